"""A session recorded with `nexo-dev --record FILE`, replayed as a test:

def test_the_deploy_question() -> None:
    replay_recording("tests/recordings/deploy.jsonl")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .host import find_project


def replay_recording(
    recording: str | os.PathLike[str],
    *,
    project: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Replay `recording` against the plugin (a relative path is from the project's root),
    with nexo-dev.toml's settings and `env` over them; fail showing each difference between
    what the plugin wrote then and now, ids and timestamps aside."""
    from nexo_plugin_runtime.devhost import recording as recordings
    from nexo_plugin_runtime.devhost import settings

    root = project or find_project()
    path = Path(recording) if Path(recording).is_absolute() else root / recording
    dev_settings = settings.load(root / settings.FILE_NAME)
    differences = recordings.replay(path, root, dev_settings, env=env)
    if differences:
        raise AssertionError(
            f"the plugin no longer does what {path.name} recorded:\n" + "\n".join(differences)
        )
