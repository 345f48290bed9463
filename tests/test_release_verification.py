"""Operator-side verification, on a real GitHub Actions keyless signature, fully offline.

The fixture (tests/fixtures/) is rfc8785-0.1.2-py3-none-any.whl from PyPI and the bundle
that trailofbits/rfc8785.py's release.yml made for it on tag v0.1.2: a plugin rendered for
that repository must accept it by default, and reject it when anything changes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from releases import release_verifier, signer_certificate
from rendering import parse_toml, render

FIXTURES = Path(__file__).parent / "fixtures"
ARTIFACT = "rfc8785-0.1.2-py3-none-any.whl"
SIGNER = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
# Any attempt to reach the network fails fast: verification must not need it.
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def signed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin whose repository is the one that signed the fixture."""
    return render(
        tmp_path_factory.mktemp("signed") / "rfc",
        plugin_id="rfc",
        github_owner="trailofbits",
        github_repo="rfc8785.py",
    )


@pytest.fixture
def release(tmp_path: Path, signed_project: Path) -> Path:
    """The signed artifact with every asset the release workflow uploads beside it."""
    for name in (ARTIFACT, f"{ARTIFACT}.sigstore.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    artifact = tmp_path / ARTIFACT
    Path(f"{artifact}.sha256").write_text(hashlib.sha256(artifact.read_bytes()).hexdigest() + "\n")
    split = subprocess.run(
        [
            sys.executable,
            str(signed_project / "scripts/split_bundle.py"),
            f"{artifact}.sigstore.json",
        ],
        capture_output=True,
        text=True,
    )
    assert split.returncode == 0, split.stderr
    return artifact


def verify(project: Path, artifact: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts/verify_release.py"), str(artifact), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )


def refusal(run: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused verification prints, without a traceback."""
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("FAIL")]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def signature_holds(run: subprocess.CompletedProcess[str]) -> None:
    """The real signature's checks all pass; the release check then refuses the fixture,
    a wheel, as no release of the plugin (tests/test_release_tarball.py passes a real one)."""
    assert run.stdout.count("\nok   ") + run.stdout.startswith("ok   ") == 3, run.stdout
    assert f"{ARTIFACT}.sig by {ARTIFACT}.cert" in run.stdout
    assert "Sigstore-issued certificate, logged in Rekor" in run.stdout
    assert (
        f"FAIL release: {ARTIFACT} is not named rfc-0.1.2-<target>.tar.gz, as the tarball of "
        "rfc for the tag v0.1.2 is"
    ) in refusal(run)


def test_accepts_the_real_signature_by_default(signed_project: Path, release: Path) -> None:
    signature_holds(verify(signed_project, release))


@pytest.mark.slow
def test_accepts_a_sha256sum_form_sidecar(signed_project: Path, release: Path) -> None:
    digest = hashlib.sha256(release.read_bytes()).hexdigest()
    Path(f"{release}.sha256").write_text(f"{digest}  {release.name}\n")
    signature_holds(verify(signed_project, release))


def forge_certificate(release: Path) -> None:
    """A self-signed certificate with the genuine signer's identity and issuer, and a .sig
    made with its key: it verifies, as far as .sig and .cert alone go."""
    genuine = x509.load_pem_x509_certificate(Path(f"{release}.cert").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "sigstore-intermediate")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
    )
    for extension in genuine.extensions:
        if extension.oid.dotted_string.startswith("1.3.6.1.4.1.57264") or isinstance(
            extension.value, x509.SubjectAlternativeName
        ):
            builder = builder.add_extension(extension.value, extension.critical)
    forged = builder.sign(key, hashes.SHA256())
    Path(f"{release}.cert").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    signature = key.sign(release.read_bytes(), ec.ECDSA(hashes.SHA256()))
    Path(f"{release}.sig").write_text(base64.b64encode(signature).decode())


def change_a_byte(release: Path) -> None:
    data = bytearray(release.read_bytes())
    data[len(data) // 2] ^= 0x01
    release.write_bytes(bytes(data))
    Path(f"{release}.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")


def sidecar_directory(release: Path) -> None:
    Path(f"{release}.sha256").unlink()
    Path(f"{release}.sha256").mkdir()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (
            change_a_byte,
            "FAIL signature: rfc8785-0.1.2-py3-none-any.whl.sig is no signature of these bytes",
        ),
        (
            lambda r: Path(f"{r}.sha256").write_text("0" * 64 + "\n"),
            "FAIL sha256: rfc8785-0.1.2-py3-none-any.whl.sha256 says 000",
        ),
        (
            lambda r: Path(f"{r}.sha256").write_text("sha256:" + "0" * 64),
            "is neither a bare digest nor",
        ),
        (
            sidecar_directory,
            "FAIL sha256: cannot read rfc8785-0.1.2-py3-none-any.whl.sha256 (Is a directory)",
        ),
        (
            lambda r: Path(f"{r}.sig").write_text("garbage!"),
            "FAIL signature: rfc8785-0.1.2-py3-none-any.whl.sig is not base64",
        ),
        (
            lambda r: Path(f"{r}.sig").write_text(base64.b64encode(b"x" * 70).decode()),
            "is no signature of these bytes",
        ),
        (
            lambda r: Path(f"{r}.cert").write_text(
                "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"
            ),
            "FAIL certificate: rfc8785-0.1.2-py3-none-any.whl.cert is not a PEM certificate",
        ),
        (
            forge_certificate,
            "FAIL certificate: rfc8785-0.1.2-py3-none-any.whl.cert is not the certificate of",
        ),
        (
            lambda r: Path(f"{r}.sigstore.json").unlink(),
            "FAIL bundle: cannot read rfc8785-0.1.2-py3-none-any.whl.sigstore.json",
        ),
        (
            lambda r: Path(f"{r}.sigstore.json").write_text("{}"),
            "FAIL bundle: rfc8785-0.1.2-py3-none-any.whl.sigstore.json is not a Sigstore bundle",
        ),
    ],
    ids=[
        "changed-byte",
        "wrong-sidecar",
        "sidecar-form",
        "sidecar-directory",
        "sig-not-base64",
        "sig-garbage",
        "cert-broken",
        "cert-forged",
        "bundle-missing",
        "bundle-broken",
    ],
)
def test_refuses_in_one_line(
    signed_project: Path, release: Path, spoil: Callable[[Path], None], message: str
) -> None:
    spoil(release)
    assert message in refusal(verify(signed_project, release))


@pytest.mark.slow
@pytest.mark.parametrize(
    "regexp",
    [
        r"^https://github\.com/someone-else/rfc8785\.py/\.github/workflows/release\.yml@refs/tags/v.*$",
        r"^https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/publish\.yml@refs/tags/v.*$",
    ],
    ids=["wrong-owner", "wrong-workflow"],
)
def test_rejects_another_identity(signed_project: Path, release: Path, regexp: str) -> None:
    run = verify(signed_project, release, "--identity-regexp", regexp)
    assert "does not match --identity-regexp" in refusal(run)


@pytest.mark.slow
def test_a_plugin_of_another_owner_rejects_it_by_default(tmp_path: Path, release: Path) -> None:
    other = render(tmp_path / "other", plugin_id="other", github_owner="someone-else")
    assert SIGNER in refusal(verify(other, release))


@pytest.mark.slow
def test_rejects_a_wrong_issuer(signed_project: Path, release: Path) -> None:
    run = verify(signed_project, release, "--issuer", "https://accounts.google.com")
    assert "FAIL issuer" in refusal(run)


@pytest.mark.slow
def test_the_script_is_mypy_strict_with_sigstore(signed_project: Path) -> None:
    # Plugins run it with `uv run`, in an environment of its own: their mypy leaves it to
    # this test, which has sigstore.
    run = subprocess.run(
        [str(Path(sys.executable).parent / "mypy"), "--strict", "--python-version", "3.10",
         "--no-incremental", str(signed_project / "scripts/verify_release.py")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_script_declares_its_dependencies_inline(signed_project: Path) -> None:
    # PEP 723: `uv run` and `pipx run` read this block to run the script alone.
    text = (signed_project / "scripts/verify_release.py").read_text()
    block = re.search(r"(?m)^# /// script\n((?:#.*\n)+?)^# ///$", text)
    assert block, "no PEP 723 block"
    metadata = parse_toml("\n".join(line[2:] for line in block.group(1).splitlines()))
    assert any(dependency.startswith("sigstore") for dependency in metadata["dependencies"])


SYMLINK = b"<a symlink>"
MANIFEST = b'[plugin]\nid = "rfc"\nversion = "1.2.0"\n'
GOOD = {"nexo-plugin.toml": MANIFEST, "bin/rfc": b"#!/bin/sh\n", "lib/rfc/__init__.py": b""}
TAGGED = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/"


def write_tarball(path: Path, members: list[tuple[str, bytes]], pax_global: bool = False) -> None:
    headers = {"comment": "what git archive writes"} if pax_global else {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content == SYMLINK:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))


@pytest.mark.parametrize(
    ("name", "members", "ref", "problem"),
    [
        ("rfc-1.2.0-noarch.tar.gz", GOOD, "tags/v1.2.0", None),
        ("rfc-1.2.0-aarch64-apple-darwin.tar.gz", GOOD, "tags/v1.2.0", None),
        ("rfc-1.1.0-noarch.tar.gz", GOOD, "tags/v1.2.0", "is not named rfc-1.2.0-<target>.tar.gz"),
        ("rfc-1.2.0-windows.tar.gz", GOOD, "tags/v1.2.0", "is not named rfc-1.2.0-<target>"),
        ("other-1.2.0-noarch.tar.gz", GOOD, "tags/v1.2.0", "is not named rfc-1.2.0-<target>"),
        ("rfc-1.2.0-noarch.tar.gz", GOOD, "heads/main", "was not issued for a tag"),
        (
            "rfc-1.2.0-noarch.tar.gz",
            {**GOOD, "nexo-plugin.toml": MANIFEST.replace(b"1.2.0", b"1.1.0")},
            "tags/v1.2.0",
            "says id 'rfc', version '1.1.0'; the tag v1.2.0 is 'rfc' '1.2.0'",
        ),
        (
            "rfc-1.2.0-noarch.tar.gz",
            {**GOOD, "nexo-plugin.toml": MANIFEST.replace(b'"rfc"', b'"other"')},
            "tags/v1.2.0",
            "says id 'other', version '1.2.0'",
        ),
        ("rfc-1.2.0-noarch.tar.gz", {**GOOD, "bin/x": SYMLINK}, "tags/v1.2.0", "not a file or a folder"),
        ("rfc-1.2.0-noarch.tar.gz", {**GOOD, "../x": b""}, "tags/v1.2.0", "the unsafe path ../x"),
        ("rfc-1.2.0-noarch.tar.gz", {"nexo-plugin.toml": MANIFEST}, "tags/v1.2.0", "no bin/rfc at its root"),
        ("rfc-1.2.0-noarch.tar.gz", "pax", "tags/v1.2.0", "pax global header"),
        ("rfc-1.2.0-noarch.tar.gz", "twice", "tags/v1.2.0", "holds bin/rfc twice"),
        ("rfc-1.2.0-noarch.tar.gz", "wheel", "tags/v1.2.0", "is not a gzip tar archive"),
    ],
    ids=[
        "noarch", "target", "other-version", "unknown-target", "other-plugin", "branch",
        "manifest-version", "manifest-id", "symlink", "traversal", "no-launcher", "pax-global",
        "duplicate", "not-a-tarball",
    ],
)  # fmt: skip
def test_the_tarball_is_the_release_its_certificate_names(
    signed_project: Path,
    tmp_path: Path,
    name: str,
    members: dict[str, bytes] | str,
    ref: str,
    problem: str | None,
) -> None:
    tarball = tmp_path / name
    if members == "wheel":
        shutil.copy(FIXTURES / ARTIFACT, tarball)
    else:
        entries = list(GOOD.items()) if isinstance(members, str) else list(members.items())
        entries += [("bin/rfc", b"again")] * (members == "twice")
        write_tarball(tarball, entries, pax_global=members == "pax")
    verifier = release_verifier(signed_project)
    certificate = signer_certificate(TAGGED + ref)
    if problem is None:
        said = verifier.check_release(tarball, tarball.read_bytes(), certificate)
        assert said.startswith(f"v1.2.0: rfc 1.2.0 for {name[len('rfc-1.2.0-') : -7]}")
        return
    with pytest.raises(verifier.Refused) as refused:
        verifier.check_release(tarball, tarball.read_bytes(), certificate)
    assert str(refused.value).startswith("release: ")
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_split_bundle_gives_what_the_installer_verifies(
    signed_project: Path, release: Path
) -> None:
    bundle = Path(f"{release}.sigstore.json")
    run = subprocess.run(
        [sys.executable, str(signed_project / "scripts/split_bundle.py"), str(bundle)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    cert_pem = Path(f"{release}.cert").read_bytes()
    assert Path(f"{release}.pem").read_bytes() == cert_pem
    certificate = x509.load_pem_x509_certificate(cert_pem)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SIGNER]
    # What `cosign verify-blob --signature .sig --certificate .cert` checks first.
    signature = base64.b64decode(Path(f"{release}.sig").read_text())
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, release.read_bytes(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, release.read_bytes() + b"x", ec.ECDSA(hashes.SHA256()))


def test_split_bundle_refuses_a_non_bundle(signed_project: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz.sigstore.json"
    bogus.write_text('{"dsseEnvelope": {}}')
    run = subprocess.run(
        [sys.executable, str(signed_project / "scripts/split_bundle.py"), str(bogus)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "not a keyless message-signature bundle" in run.stderr


@pytest.fixture(scope="module")
def acme_readme(tmp_path_factory: pytest.TempPathFactory) -> str:
    project = render(tmp_path_factory.mktemp("acme") / "x", plugin_id="x", github_owner="acme")
    return (project / "README.md").read_text(encoding="utf-8")


TRUSTED_KEYS = re.compile(r"```toml\n(\[\[authors\]\].*?)```", re.S)


GITHUB = "https://github.com/"
RELEASE = "/.github/workflows/release.yml@refs/"


@pytest.mark.parametrize(
    ("identity", "trusted"),
    [
        (f"{GITHUB}acme/nexo-plugin-x{RELEASE}tags/v1.2.3", True),
        (f"{GITHUB}acme/nexo-plugin-x{RELEASE}tags/v2.0.0-rc.1", True),
        (f"{GITHUB}acme/nexo-plugin-x{RELEASE}heads/main", False),
        (f"{GITHUB}acme/nexo-plugin-x/.github/workflows/ci.yml@refs/tags/v1.2.3", False),
        (f"{GITHUB}evil/nexo-plugin-x{RELEASE}tags/v1.2.3", False),
        (f"{GITHUB}acme/nexo-plugin-xy{RELEASE}tags/v1.2.3", False),
        (f"{GITHUB}acme/nexo-plugin-x{RELEASE}tags/v1.2.3x", False),
        (f"https://evil.example/{GITHUB}acme/nexo-plugin-x{RELEASE}tags/v1.2.3", False),
    ],
)
def test_readme_trusted_keys_entry(acme_readme: str, identity: str, trusted: bool) -> None:
    found = TRUSTED_KEYS.search(acme_readme)
    assert found
    entry = parse_toml(found.group(1))
    (author,) = entry["authors"]
    assert author["owner"] == "acme"
    assert author["oidc_issuer"] == "https://token.actions.githubusercontent.com"
    assert author["mode"] == "require"
    assert author["identity_regexp"].startswith("^")
    assert author["identity_regexp"].endswith("$")
    # cosign searches with Go's RE2, which reads this pattern as Python's re does.
    assert bool(re.search(author["identity_regexp"], identity)) is trusted
