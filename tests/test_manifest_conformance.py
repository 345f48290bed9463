"""The manifest checker (hooks/nexo_manifest.py, scripts/nexo_manifest.py in every plugin)
against the daemon itself: its real validator's verdicts on 2,000 manifests and on one
minimal manifest per kind of disagreement found before (tests/fixtures/conformance/, taken
from the daemon's crate as its README says). The checker may refuse what the daemon accepts
only for a reason in STRICTER, and may let through what the daemon refuses only for the
newer contract's [plugin.extends], which it then names."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from rendering import TEMPLATE_ROOT

from hooks import nexo_manifest

CONFORMANCE = TEMPLATE_ROOT / "tests/fixtures/conformance"
REPROS = sorted((CONFORMANCE / "manifest-repros").glob("*.toml"))


def verdict(reading: nexo_manifest.Reading, daemon_says: str, daemon_error: str) -> str:
    """How the checker's reading stands to the daemon's verdict on the same manifest
    (loaded and launched): "agrees", "stricter", "newer contract", or what is wrong."""
    refuses = bool(reading.daemon or reading.stricter)
    if refuses == (daemon_says == "ERR"):
        return "agrees"
    if daemon_says == "OK" and not reading.daemon:
        return "stricter"
    if reading.newer and "unknown field `extends`" in daemon_error:
        return "newer contract"
    return "accepts what the daemon refuses" if daemon_says == "ERR" else "refuses for nothing"


def reading_of(data: bytes) -> nexo_manifest.Reading:
    try:
        return nexo_manifest.read(nexo_manifest.parse(data, "nexo-plugin.toml"))
    except nexo_manifest.ManifestProblem as problem:
        return nexo_manifest.Reading(daemon=[str(problem)])


def test_the_checker_agrees_with_the_daemon_on_its_2000_verdicts() -> None:
    with gzip.open(CONFORMANCE / "manifest-verdicts.jsonl.gz", "rt", encoding="utf-8") as lines:
        cases = [json.loads(line) for line in lines]
    tally: Counter[str] = Counter()
    wrong = []
    for case in cases:
        reading = reading_of(case["manifest"].encode("utf-8", "surrogatepass"))
        outcome = verdict(reading, case["daemon_spawn"], case["daemon_spawn_error"])
        tally[outcome] += 1
        if outcome not in ("agrees", "stricter", "newer contract"):
            wrong.append((case["case"], case["mutation"], outcome, case["daemon_spawn_error"]))
    print(f"\n{len(cases)} daemon verdicts: {dict(tally)}")
    assert not wrong, "\n".join(map(str, wrong[:20]))
    assert len(cases) == 2000


@pytest.mark.parametrize("repro", REPROS, ids=[path.stem for path in REPROS])
def test_each_kind_of_disagreement_is_settled(repro: Path) -> None:
    verdicts = (CONFORMANCE / "manifest-repros/VERDICTS.txt").read_text()
    daemon_says = re.search(
        rf"^{re.escape(repro.name)}\n.*\n  \+spawn checks: (\w+)", verdicts, re.M
    )
    assert daemon_says is not None
    reading = reading_of(repro.read_bytes())
    outcome = verdict(
        reading, daemon_says[1], "unknown field `extends`" * (repro.stem == "A1_extends")
    )
    assert outcome in ("agrees", "stricter", "newer contract"), (outcome, reading)
    if outcome == "stricter":  # each said with its reason
        assert all(
            any(reason in line for reason in nexo_manifest.STRICTER.values())
            for line in reading.stricter
        )


@pytest.mark.parametrize(
    ("requirement", "version", "met"),
    [
        (">=0.1.0", "0.1.5", True),
        (">0.1.5", "0.1.5", False),
        (">0.1.5-alpha", "0.1.5", True),
        ("<0.1.5", "0.1.5", False),
        ("<=0.1.5", "0.1.5", True),
        ("=0.1", "0.1.5", True),
        ("=0.1.5-rc.1", "0.1.5", False),
        ("0.1.5-rc.1", "0.1.5", True),
        ("^0.1", "0.1.5", True),
        ("^0.1.6", "0.1.5", False),
        ("^0.0.5", "0.1.5", False),
        ("^1.2", "1.9.0", True),
        ("~0.1.4", "0.1.5", True),
        ("~0.2", "0.1.5", False),
        ("0.*", "0.1.5", True),
        ("1.x", "0.1.5", False),
        (">= 0.1.0 , < 0.2.0", "0.1.5", True),
        ("*", "9.9.9", True),
        (">=0.1.0+build", "0.1.5", True),
    ],
)
def test_requirements_are_met_as_the_semver_crate_says(
    requirement: str, version: str, met: bool
) -> None:
    comparators = nexo_manifest.parse_requirement(requirement)
    assert nexo_manifest.requirement_matches(comparators, version) is met


MINIMAL = """\
[plugin]
id = "p"
version = "0.1.0"
name = "P"
description = "d"
min_nexo_version = "{requirement}"

[plugin.entrypoint]
command = "./bin/p"
"""


def test_the_daemon_version_checked_against_can_be_chosen(tmp_path: Path) -> None:
    manifest = tmp_path / "nexo-plugin.toml"
    manifest.write_text(MINIMAL.format(requirement=">=0.2.0"))

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        script = TEMPLATE_ROOT / "hooks/nexo_manifest.py"
        command = [sys.executable, str(script), *args, str(manifest)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    refused = check()
    assert refused.returncode == 1
    assert "'>=0.2.0' is not met by nexo 0.1.5" in refused.stderr
    assert "--nexo-version" in refused.stderr
    accepted = check("--nexo-version", "0.2.0")
    assert accepted.returncode == 0, accepted.stderr
    assert "follows the rules of nexo 0.2.0" in accepted.stdout
    bad = check("--nexo-version", "0.2")
    assert bad.returncode == 2
    assert "--nexo-version '0.2'" in bad.stderr


def test_every_problem_is_said_at_once() -> None:
    text = MINIMAL.format(requirement=">=0.1.0\\n").replace('id = "p"', 'id = "P"')
    text += "[plugin.supervisor]\nmax_attempts = 4294967296\nmystery = 1\n"
    reading = reading_of(text.encode())
    assert len(reading.daemon) == 4, reading.daemon
    said = "\n".join(reading.daemon)
    assert "plugin.id 'P' must match" in said
    assert "expected comma after patch version number, found '\\n'" in said
    assert "from 0 to 4294967295 (the daemon reads a u32)" in said
    assert "unknown key 'mystery' in [plugin.supervisor]" in said
