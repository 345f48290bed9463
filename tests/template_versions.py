"""Two tagged versions of this template and plugins of the first, for the update tests:
v1.0.0 pins an older SDK; v2.0.0 brings the current pin back, a runtime fix, a change of
behaviour, workflow and script fixes, a new question and its release notes. Template changes
are appended, never written into the template's sentences, so that rewording the template
does not break these tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from environments import find_python, first_steps, plain_path, uv
from git_repos import commit_all, git, template_copy
from nexo_plugin_runtime.integrity import hashes_listing
from rendering import BIN, copier_cli, runtime_pins

CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.M)
PYTHON = find_python("3.10") or "python3"
OLDER_SDK = "0.3.0"  # a real older release of nexoai: v1 pins it, v2 the current one
NEW_QUESTION = """
support_url:
  type: str
  help: Where operators report problems.
  default: "https://github.com/{{ github_owner }}/{{ github_repo }}/issues"
"""
RUNTIME_FIX = "\n# v2: a runtime fix\n"
V2_NOTES = """## 2.0.0 (2027-01-01)

### Upgrading

- Set `support_url` if operators report problems elsewhere.
- At most 500 handlers run at once now: set `plugin.max_handlers` in `on_start` for more.

"""
# v2's change of behaviour.
MAX_HANDLERS_V1, MAX_HANDLERS_V2 = "MAX_HANDLERS = 1000\n", "MAX_HANDLERS = 500\n"
# What v2 appends to files that follow the template, and to ones that are the author's.
FOLLOWING = {
    "template/runtime/src/nexo_plugin_runtime/frames.py": RUNTIME_FIX,
    "template/.github/workflows/release.yml.jinja": "# v2: release.yml\n",
    "template/scripts/pack_tarball.py": "# v2: pack_tarball.py\n",
    "hooks/nexo_stdout.py": "# v2: nexo_stdout.py\n",
    "template/README.md.jinja": "\nSupport: {{ support_url }}\n",
}
AUTHORS = {
    "template/src/{{ package_name }}/handlers.py.jinja": "# v2: handlers.py\n",
    "template/src/{{ package_name }}/main.py": "# v2: main.py\n",
}


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def relist_runtime(template: Path) -> None:
    runtime = template / "template" / "runtime"
    (runtime / "FILES.sha256").write_text(hashes_listing(str(runtime)))


def template_v1(tmp: Path) -> Path:
    """The template tagged v1.0.0, pinning the older SDK."""
    template = template_copy(tmp / "template", tag=None)
    pyproject = template / "template" / "runtime" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f"nexoai=={runtime_pins()['nexoai']}", f"nexoai=={OLDER_SDK}")
    )
    relist_runtime(template)
    commit_all(template, "v1", "v1.0.0")
    return template


def plugin_from(template: Path, project: Path, *data: str, synced: bool = True) -> Path:
    """A plugin of `template` after the README's first steps (or, not `synced`, committed)."""
    args = [arg for item in data for arg in ("--data", item)]
    run = copier_cli("copy", "--defaults", *args, str(template), str(project))
    assert run.returncode == 0, run.stderr
    if synced:
        first_steps(project, PYTHON)
    else:
        git(project, "init", "-q", "-b", "main")
        commit_all(project, "generated")
    return project


def render_v1(tmp: Path, *data: str, synced: bool = True) -> tuple[Path, Path]:
    template = template_v1(tmp)
    return template, plugin_from(template, tmp / "plugin", *data, synced=synced)


def release_v2(template: Path) -> None:
    """The current SDK pin back, a runtime fix, other fixes, a new question: v2.0.0."""
    pyproject = template / "template" / "runtime" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f"nexoai=={OLDER_SDK}", f"nexoai=={runtime_pins()['nexoai']}")
    )
    for name, text in {**FOLLOWING, **AUTHORS}.items():
        append(template / name, text)
    context = template / "template/runtime/src/nexo_plugin_runtime/context.py"
    context.write_text(context.read_text().replace(MAX_HANDLERS_V1, MAX_HANDLERS_V2))
    relist_runtime(template)
    append(template / "copier.yml", NEW_QUESTION)
    changelog = template / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    first = text.index("\n## ") + 1
    changelog.write_text(text[:first] + V2_NOTES + text[first:], encoding="utf-8")
    commit_all(template, "v2: template fixes", "v2.0.0")


def author_edits(project: Path, dependencies: bool = False) -> None:
    if dependencies:
        added = uv("add", "--quiet", "--python", PYTHON, "httpx", "pydantic", cwd=project)
        assert added.returncode == 0, added.stderr
    append(next(project.glob("src/*/handlers.py")), "\n\nAUTHOR_SETTING = 1\n")
    own_tests = set(project.glob("tests/test_*.py")) - {
        project / "tests/test_protocol.py",
        project / "tests/test_release.py",
    }
    append(min(own_tests), "\n\ndef test_the_author_s_own() -> None:\n    pass\n")
    readme = project / "README.md"
    readme.write_text("<!-- ACME: ask the platform team for a daemon. -->\n" + readme.read_text())
    changelog = project / "CHANGELOG.md"
    changelog.write_text("# The author's changelog\n\n" + changelog.read_text())
    commit_all(project, "author's changes")


@dataclass
class RoundTrip:
    template: Path
    project: Path
    update: subprocess.CompletedProcess[str]
    body: str = ""  # the pull request's text, when the update script made the branch


def update_script(
    project: Path, mypy_cache: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], str]:
    """scripts/template_update.py as the template-update workflow runs it, without
    --publish: the branch and the pull request's text. `mypy_cache`: one the fleet shares."""
    cache = {"MYPY_CACHE_DIR": str(mypy_cache)} if mypy_cache else {}
    body = project.parent / f"{project.name}-pull-request.md"
    own = project / ".venv/bin/python"  # else this repository's: it has packaging too
    run = subprocess.run(
        [str(own if own.exists() else sys.executable), "scripts/template_update.py",
         "--copier", str(BIN / "copier"), "--body", str(body)],
        cwd=project, capture_output=True, text=True, timeout=900,
        env={**os.environ, **cache, "PATH": os.pathsep.join([str(project / ".venv/bin"), str(BIN), plain_path()])},
    )  # fmt: skip
    return run, body.read_text(encoding="utf-8") if body.exists() else ""
