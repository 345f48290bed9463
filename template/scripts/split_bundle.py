"""Derive the files the nexo installer verifies from a cosign bundle.

    python3 scripts/split_bundle.py dist/<tarball>.sigstore.json

`cosign sign-blob --bundle` (cosign v3) writes only the Sigstore bundle, while
`nexo plugin install` downloads <tarball>.sig (the base64 signature) and <tarball>.cert (the
PEM signing certificate) and runs `cosign verify-blob` on them. This writes both, plus a
<tarball>.pem copy of the certificate, next to the bundle. Standard library only; follows
the template.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

SUFFIX = ".sigstore.json"


class BundleError(Exception):
    pass


def signature_and_certificate(bundle: dict[str, Any]) -> tuple[str, str]:
    """(base64 signature, PEM certificate) of a message-signature bundle (v0.1 to v0.3)."""
    try:
        signature = bundle["messageSignature"]["signature"]
        material = bundle["verificationMaterial"]
        if "certificate" in material:
            der_base64 = material["certificate"]["rawBytes"]
        else:
            der_base64 = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
    except (KeyError, IndexError, TypeError) as missing:
        raise BundleError(
            f"not a keyless message-signature bundle (missing {missing}); "
            "sign with `cosign sign-blob --bundle`"
        ) from None
    der = base64.b64decode(der_base64, validate=True)
    base64.b64decode(signature, validate=True)
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return signature, f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def split(bundle_path: Path) -> list[Path]:
    if not bundle_path.name.endswith(SUFFIX):
        raise BundleError(f"{bundle_path}: expected <artifact>{SUFFIX}")
    try:
        bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BundleError(f"{bundle_path}: cannot read the bundle: {error}") from None
    signature, certificate = signature_and_certificate(bundle)
    artifact = str(bundle_path)[: -len(SUFFIX)]
    written = [Path(f"{artifact}.sig"), Path(f"{artifact}.cert"), Path(f"{artifact}.pem")]
    written[0].write_text(signature, encoding="ascii")
    written[1].write_text(certificate, encoding="ascii")
    written[2].write_text(certificate, encoding="ascii")
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        written = split(Path(argv[0]))
    except BundleError as error:
        print(f"split_bundle: {error}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
