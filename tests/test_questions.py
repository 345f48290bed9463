"""The questionnaire: validators, derived defaults and answers that need escaping."""

from __future__ import annotations

import ast
import keyword
import re
import subprocess
import sys
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path

import pytest
import yaml
from git_repos import plain_template, questionnaire
from rendering import BIN, TEMPLATE_ROOT, copier_cli, read_answers, read_toml, render

COPIER_YML = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text(encoding="utf-8"))
QUESTIONS_JINJA = (TEMPLATE_ROOT / "jinja" / "questions.jinja").read_text(encoding="utf-8")


def validation_error(tmp_path: Path, **data: object) -> str | None:
    """copier's validation message for these answers, or None when they are accepted."""
    dst = tmp_path / "dst"
    try:
        render(dst, pretend=True, template=questionnaire(), **data)
    except ValueError as error:
        assert not dst.exists(), "a refused answer must leave nothing behind"
        return str(error)
    return None


GOOD = [
    ("plugin_id", "a"),
    ("plugin_id", "my_plugin_2"),
    ("plugin_id", "x" * 32),
    ("capabilities", ["webhook", "outbound"]),
    ("plugin_name", 'Ünïcode "Name" \\ ok'),
    ("description", "Quotes \" ' and \\ back\\slashes, ünïcødé, <tags> and *stars*"),
    ("author_email", "jane.doe+nexo@example.co.uk"),
    ("github_owner", "a-b-c"),
    ("github_owner", "A" * 39),
    ("github_repo", "my.repo_name-2"),
    ("channel_kind", "telegram_bot"),
    ("release_owners", "@me @acme/release-team"),
    ("python_min", "3.14"),
]

BAD = [
    ("plugin_id", "my-plugin", "must match ^[a-z][a-z0-9_]{0,31}$"),
    ("plugin_id", "MyPlugin", "for example myplugin"),
    ("plugin_id", "x" * 33, "1 to 32 characters"),
    ("plugin_id", "1plugin", "starting with a letter"),
    ("plugin_id", "", "must match"),
    ("plugin_id", "abc\n", "must match"),
    ("plugin_id", "json", "a standard-library module"),
    ("plugin_id", "class", "a Python keyword"),
    ("plugin_id", "nexo_plugin_sdk", "the SDK's or the runtime's module"),
    ("plugin_id", "nexo_plugin_runtime", "the SDK's or the runtime's module"),
    ("plugin_id", "asyncio", "pick another, such as asyncio_plugin"),
    ("plugin_id", "pytest", "a package plugins install"),
    ("plugin_id", "nexoai", "a package plugins install"),
    ("plugin_id", "httpx", "a package plugins install"),
    ("plugin_id", "typing_extensions", "a package plugins install"),
    ("plugin_id", "pip_", "a package plugins install"),
    ("plugin_name", "  ", "plugin_name must not be empty"),
    ("plugin_name", "two\nlines", "single line"),
    ("description", "", "description must not be empty"),
    ("description", "line one\nline two", "single line"),
    ("description", "tab\there", "control characters"),
    ("description", "a byte \udcff that is not UTF-8", "is not valid UTF-8 text"),
    ("author_name", "", "author_name must not be empty"),
    ("author_email", "not-an-email", "is not an e-mail address"),
    ("author_email", "a@b", "is not an e-mail address"),
    ("author_email", "a@b.c\n", "is not an e-mail address"),
    ("author_email", "back\\slash@example.com", "is not an e-mail address"),
    ("author_email", "a..b@example.com", "is not an e-mail address"),
    ("description", "Pay \u202eusd 01\u202c now", "text-direction control character"),
    ("plugin_name", "Zero\u200bwidth", "invisible or text-direction control character"),
    ("author_name", "Line\u2028separated", "invisible or text-direction control character"),
    ("github_owner", "-bad", "is not a GitHub user or organisation name"),
    ("github_owner", "bad-", "not starting or ending with a hyphen"),
    ("github_owner", "a--b", "single hyphens"),
    ("github_owner", "has space", "is not a GitHub user"),
    ("github_owner", "x" * 40, "1 to 39"),
    ("github_owner", "owner\n", "is not a GitHub user"),
    ("github_repo", "..", "is not a GitHub repository name"),
    ("github_repo", "repo.git", 'not ending in ".git"'),
    ("github_repo", "a/b", "is not a GitHub repository name"),
    ("github_repo", "repo\n", "is not a GitHub repository name"),
    ("channel_kind", "Bad-Kind", "must match ^[a-z][a-z0-9_]{0,31}$"),
    ("channel_kind", "k" * 33, "at most 32"),
    ("channel_kind", "kind\n", "must match"),
    ("release_owners", "me", "must be GitHub users or teams"),
    ("release_owners", "@me\n", "must be GitHub users or teams"),
]


@pytest.mark.parametrize(("question", "value"), GOOD)
def test_validator_accepts(tmp_path: Path, question: str, value: str) -> None:
    assert validation_error(tmp_path, **{question: value}) is None


@pytest.mark.parametrize(("question", "value", "message"), BAD)
def test_validator_rejects_with_a_clear_message(
    tmp_path: Path, question: str, value: str, message: str
) -> None:
    error = validation_error(tmp_path, **{question: value})
    assert error is not None, f"{question}={value!r} was accepted"
    assert error.startswith(f"Validation error for question '{question}': ")
    assert message in error


@pytest.mark.parametrize(
    ("question", "value"),
    [("license", "GPL-3.0"), ("python_min", "3.9"), ("capabilities", ["webhook", "bot"])],
)
def test_choices_reject_unknown_values(tmp_path: Path, question: str, value: str) -> None:
    error = validation_error(tmp_path, **{question: value})
    assert error is not None
    assert "Invalid choice" in error


@pytest.mark.parametrize(
    ("folder", "plugin_id"),
    [
        ("my-plugin", "my_plugin"),
        ("My Fancy.Plugin", "my_fancy_plugin"),
        ("42-answers", "answers"),
        ("json", "json_plugin"),
        ("httpx", "httpx_plugin"),
        ("---", "my_plugin"),
        ("plugin-" + "x" * 40, "plugin_" + "x" * 25),
        ("trailing_-_", "trailing"),
    ],
)
def test_plugin_id_defaults_to_a_valid_id_from_the_folder_name(
    tmp_path: Path, folder: str, plugin_id: str
) -> None:
    render(tmp_path / folder, template=questionnaire())
    answers = read_answers(tmp_path / folder)
    assert answers["plugin_id"] == plugin_id
    assert answers["channel_kind"] == plugin_id
    assert read_toml(tmp_path / folder / "nexo-plugin.toml")["plugin"]["id"] == plugin_id


def test_reserved_names_cover_keywords_and_the_standard_library() -> None:
    block = re.search(r'set reserved_modules = "(.*?)"', QUESTIONS_JINJA, re.S)
    assert block
    reserved = set(block.group(1).split())
    identifier = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
    expected = {name for name in sys.stdlib_module_names if identifier.match(name)}
    expected |= {word for word in keyword.kwlist if identifier.match(word)}
    expected |= {"nexo_plugin_sdk", "nexo_plugin_runtime", "tests"}
    assert expected - reserved == set()


def test_description_survives_toml_python_and_markdown(tmp_path: Path) -> None:
    description = 'He said "hi" \\ left a back\\\\slash, ünïcødé ✓ — *not* <b>bold</b> # [x](y) `z`'
    project = render(
        tmp_path / "quoting",
        template=plain_template(),
        plugin_id="quoting",
        description=description,
    )
    assert read_toml(project / "nexo-plugin.toml")["plugin"]["description"] == description
    assert read_toml(project / "pyproject.toml")["project"]["description"] == description
    docstring = ast.get_docstring(ast.parse((project / "src/quoting/__init__.py").read_text()))
    assert docstring is not None
    assert " ".join(docstring.split()) == description
    readme = (project / "README.md").read_text(encoding="utf-8")
    escaped = re.sub(r"([\\`*_{}\[\]<>()#+!|~-])", r"\\\1", description)
    assert f"\n{escaped}\n" in readme


@pytest.mark.parametrize(
    "address",
    ["a..b@example.com", ".a@example.com", "a.@example.com", "a.b@example.com",
     "o'brien+x@example.co.uk", "a@b..c", "a@-b.c", "a b@example.com"],
)  # fmt: skip
def test_an_e_mail_address_is_accepted_exactly_when_the_build_backend_takes_it(
    tmp_path: Path, address: str
) -> None:
    # hatchling writes the authors' addresses with email.headerregistry.Address, which
    # refuses what is not an RFC 5322 dot-atom (and `uv sync` fails on it).
    try:
        Address(display_name="Jane", addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        taken = False
    else:
        taken = "@" in address and "." in address.split("@")[-1]
    refused = validation_error(tmp_path, author_email=address)
    assert (refused is None) == taken, refused


def test_a_typographic_description_renders_a_ruff_clean_plugin(tmp_path: Path) -> None:
    description = "It\u2019s \u201csmart\u201d: \u03b1-tested, \u2018quoted\u2019 \u2013 and \u2032primed\u2032"
    project = render(tmp_path / "typo", template=plain_template(), plugin_id="typo",
                     description=description)  # fmt: skip
    run = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "."], cwd=project, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout
    assert "\u201csmart\u201d" in (project / "src/typo/__init__.py").read_text(encoding="utf-8")


def test_copier_yml_needs_no_trust() -> None:
    assert {"_tasks", "_jinja_extensions", "_migrations"} & set(COPIER_YML) == set()


@pytest.mark.slow
def test_copier_cli_renders_without_trust(tmp_path: Path) -> None:
    dst = tmp_path / "cli_plugin"
    run = copier_cli(
        "copy",
        "--defaults",
        "--vcs-ref",
        "HEAD",
        "--data",
        "plugin_id=cli_plugin",
        "--data",
        'capabilities=["poller", "tools"]',
        str(TEMPLATE_ROOT),
        str(dst),
    )
    assert run.returncode == 0, run.stderr
    assert read_toml(dst / "nexo-plugin.toml")["plugin"]["id"] == "cli_plugin"
    assert read_answers(dst)["capabilities"] == ["poller", "tools"]
    ready = 'Your nexo plugin "cli_plugin" (feed poller, agent tools) is ready'
    assert ready in run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("plugin_id=Bad-Id", "for example bad_id"),
        ("description=a byte \udcff that is not UTF-8", "is not valid UTF-8 text"),
    ],
    ids=["bad-id", "not-utf8"],
)
def test_copier_cli_reports_a_bad_answer(tmp_path: Path, data: str, message: str) -> None:
    dst = tmp_path / "bad"
    # A byte that is not UTF-8 reaches copier as a lone surrogate, as from a shell argument.
    run = subprocess.run(
        [
            str(BIN / "copier"),
            "copy",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "--data",
            data.encode("utf-8", "surrogateescape"),
            str(TEMPLATE_ROOT),
            str(dst),
        ],
        capture_output=True,
        timeout=300,
    )
    assert run.returncode != 0
    stderr = run.stderr.decode("utf-8", "replace")
    assert "Validation error for question" in stderr
    assert message in stderr
    assert not dst.exists()


@pytest.mark.slow
def test_the_oldest_supported_copier_renders_the_same_files(tmp_path: Path) -> None:
    oldest = COPIER_YML["_min_copier_version"]
    dst = tmp_path / "oldest"
    copier = [str(BIN / "uv"), "tool", "run", "--from", f"copier=={oldest}", "copier"]
    data = ["--data", "plugin_id=oldest", "--data", 'capabilities=["webhook", "tools"]']
    run = subprocess.run(
        [*copier, "copy", "--defaults", "--vcs-ref", "HEAD", *data, str(TEMPLATE_ROOT), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    current = render(
        tmp_path / "current" / "oldest", plugin_id="oldest", capabilities=["webhook", "tools"]
    )
    # Both record the template commit they rendered, which a dirty tree makes differ.
    recorded = {".copier-answers.yml"}
    names = {str(path.relative_to(current)) for path in current.rglob("*") if path.is_file()}
    assert names == {str(path.relative_to(dst)) for path in dst.rglob("*") if path.is_file()}
    for name in sorted(names - recorded):
        assert (dst / name).read_bytes() == (current / name).read_bytes(), name
