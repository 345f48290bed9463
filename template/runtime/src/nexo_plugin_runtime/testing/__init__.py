"""Testing a plugin as the daemon would run it: a scripted host (host.py), a scripted HTTP
server and a webhook client (http.py), pytest fixtures (fixtures.py), and the replay of a
session recorded with nexo-dev (replay.py). For a plugin's tests only: the release tarball
leaves this package out."""

from .host import (
    NEXO_VERSION,
    DaemonSide,
    HostReply,
    PluginHost,
    assert_daemon_accepts,
    broker_event,
    find_project,
    launcher,
    read_manifest,
    run_plugin,
    strict_json,
    wait_until,
)
from .http import LocalHTTPServer, Request, Response, http_post
from .replay import replay_recording

__all__ = [
    "NEXO_VERSION",
    "DaemonSide",
    "HostReply",
    "LocalHTTPServer",
    "PluginHost",
    "Request",
    "Response",
    "assert_daemon_accepts",
    "broker_event",
    "find_project",
    "http_post",
    "launcher",
    "read_manifest",
    "replay_recording",
    "run_plugin",
    "strict_json",
    "wait_until",
]
