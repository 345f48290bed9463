"""`uv run nexo-dev`: the plugin under a daemon on the author's desk. `nexo-dev --help`
tells the options; the package's docstring tells the whole."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from nexo_plugin_runtime.testing.host import find_project, read_manifest

from . import console, installed, recording, settings
from .answers import HostAnswers, OpenAICompatible
from .reload import SourceWatcher
from .session import DevSession, UsageError, open_session
from .web import Inspector

FRAME_KINDS = ("host", "plugin", "call", "answer")


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(
        prog="nexo-dev",
        description="Run the plugin as the daemon does, see every frame, and act on it: type "
        "an event's text or JSON at the prompt, /tool NAME {...} to call a tool, /help.",
    )
    options.add_argument("--project", type=Path, help="the plugin project (default: here or above)")
    options.add_argument(
        "--settings",
        type=Path,
        help=f"the dev settings (default: {settings.FILE_NAME} of the project)",
    )
    options.add_argument(
        "--installed",
        metavar="DIST",
        type=Path,
        help="run the packed plugin: a tarball, or the folder of them (dist/), unpacked read-only",
    )
    options.add_argument(
        "--events",
        metavar="FILE",
        type=Path,
        help="play a JSONL file of events and tool calls first",
    )
    options.add_argument(
        "--record", metavar="FILE", type=Path, help="record the session, to replay as a test"
    )
    options.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="replay a recording and compare what the plugin writes; exit 1 on a difference",
    )
    options.add_argument(
        "--llm-url",
        metavar="URL",
        help="answer llm.complete from this OpenAI-compatible endpoint (e.g. https://api.openai.com/v1)",
    )
    options.add_argument(
        "--llm-key-env",
        metavar="NAME",
        default="OPENAI_API_KEY",
        help="the variable holding its API key (default: OPENAI_API_KEY; unset: no key)",
    )
    options.add_argument(
        "--llm-model",
        metavar="NAME",
        help="the model to ask for (default: the one the plugin names)",
    )
    options.add_argument(
        "--web", action="store_true", help="also serve the web inspector on 127.0.0.1"
    )
    options.add_argument(
        "--port", type=int, default=0, help="the inspector's port (default: a free one)"
    )
    options.add_argument(
        "--no-watch", action="store_true", help="do not restart the plugin when its source changes"
    )
    return options


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problems: list[str] = []
    try:
        project = find_project(args.project)
    except FileNotFoundError as error:
        print(f"nexo-dev: {error}", file=sys.stderr)
        return 2
    dev_settings = settings.DevSettings()
    try:
        dev_settings = settings.load(args.settings or project / settings.FILE_NAME)
    except settings.SettingsError as error:
        problems.append(str(error))
    actions: list[console.Action] = []
    if args.events is not None:
        try:
            actions = console.read_events(args.events)
        except (OSError, UsageError) as error:
            problems.append(str(error))
    model = None
    if args.llm_url:
        key = os.environ.get(args.llm_key_env)
        if not key and "--llm-key-env" in (argv if argv is not None else sys.argv):
            problems.append(f"--llm-key-env {args.llm_key_env}: the variable is not set")
        model = OpenAICompatible(args.llm_url, key, args.llm_model)
    if problems:
        print("nexo-dev: " + "\n".join(problems), file=sys.stderr)
        return 2
    if args.replay is not None:
        return replay(args.replay, project, dev_settings)
    try:
        with plugin_at(project, args.installed) as (root, command):
            answers = HostAnswers(dev_settings, model)
            with open_session(root, answers, dev_settings, command=command) as session:
                return run(
                    session, args, actions, watch=args.installed is None and not args.no_watch
                )
    except UsageError as error:
        print(f"nexo-dev: {error}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def plugin_at(project: Path, dist: Path | None) -> Iterator[tuple[Path, list[str] | None]]:
    """The plugin's folder and command: the checkout's, or the unpacked tarball's."""
    if dist is None:
        yield project, None
        return
    plugin_id = read_manifest(project)["plugin"]["id"]
    tarball = installed.choose_tarball(dist, plugin_id)
    with installed.unpacked(tarball) as folder:
        print(f"nexo-dev: {tarball.name} unpacked read-only in {folder}")
        yield folder, [str(folder / "bin" / plugin_id)]


def replay(path: Path, project: Path, dev_settings: settings.DevSettings) -> int:
    try:
        differences = recording.replay(path, project, dev_settings)
    except (OSError, ValueError) as error:
        print(f"nexo-dev: {error}", file=sys.stderr)
        return 2
    if differences:
        print("\n".join(differences))
        print(f"nexo-dev: the plugin no longer does what {path} recorded")
        return 1
    print(f"nexo-dev: the plugin does what {path} recorded")
    return 0


def run(
    session: DevSession, args: argparse.Namespace, actions: list[console.Action], *, watch: bool
) -> int:
    terminal = console.Terminal(session, sys.stdout)
    recorder = recording.Recorder(args.record, session) if args.record else None
    inspector = Inspector(session, args.port) if args.web else None
    watcher = None
    try:
        terminal.say(f"nexo-dev: {session.plugin_id} from {session.project}")
        if inspector is not None:
            terminal.say(f"nexo-dev: the web inspector is at {inspector.url}")
        started = session.start()
        if watch:
            watcher = SourceWatcher(session.project, session.restart)
            if not started:
                terminal.say(
                    "nexo-dev: the plugin did not start (above); save a fix and it restarts"
                )
        elif not started and not sys.stdin.isatty() and inspector is None:
            return 1
        going_on = not actions or console.play(session, actions, terminal.say)
        if going_on and (sys.stdin.isatty() or (inspector is None and not actions)):
            console.prompt(session, terminal.say)  # typed, or piped in
        elif going_on and inspector is not None:
            terminal.say("nexo-dev: serving the inspector; Ctrl-C stops")
            threading.Event().wait()
        session.shutdown()
        flags = len(session.since(0, "flag"))
        terminal.say(f"nexo-dev: {len(session.since(0, *FRAME_KINDS))} frames, {flags} flagged")
        return 0
    except KeyboardInterrupt:
        session.shutdown()
        return 130
    finally:
        if watcher is not None:
            watcher.stop()
        if inspector is not None:
            inspector.close()
        if recorder is not None:
            recorder.close()
