"""Testing a plugin as the daemon would run it: a scripted host (host.py), a scripted HTTP
server and a webhook client (http.py), and pytest fixtures (fixtures.py); the replay of a
session recorded with nexo-dev is nexo_plugin_runtime.devhost.replay_recording. For a
plugin's tests only: the release tarball leaves this package out."""

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
    "run_plugin",
    "strict_json",
    "wait_until",
]
