"""``vmcr2 watch --serve``: the same dashboard in a web browser, through textual-serve.

textual-serve (an optional extra, ``pip install 'vmcr2[serve]'``) starts one ``vmcr2 watch``
process per browser tab, under Textual's web driver, and relays it over a websocket. It
listens on 127.0.0.1 unless told otherwise — a dashboard of someone's runs is not for the
whole network by default — so the usual way in from a laptop is one forwarded port:
``ssh -L 8000:127.0.0.1:8000 gpu-server``, then http://127.0.0.1:8000.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Callable

from vmcr2_cli.errors import BadInput

ENABLE_HINT = "vmcr2 watch --serve needs textual-serve: pip install 'vmcr2[serve]'"


def dashboard_command(paths: list[Path], interval: float) -> str:
    """The shell command textual-serve runs for each browser tab: this Python's ``vmcr2 watch``, exec'd
    so that the server is its parent (the dashboard exits when its parent is gone)."""
    absolute = [os.path.abspath(path) for path in paths]  # not resolved: runs/latest is followed as a link
    return "exec " + shlex.join([sys.executable, "-m", "vmcr2_cli", "watch", *absolute, "--interval", str(interval)])


def is_served_tab() -> bool:
    """Whether this ``vmcr2 watch`` is a browser tab's, started by textual-serve: Textual's web driver,
    its output a pipe to the server rather than a terminal."""
    return "web_driver" in os.environ.get("TEXTUAL_DRIVER", "")


def while_the_server_lives() -> Callable[[], bool]:
    """For a tab's dashboard: true while the server that started it lives. One that outlived its server
    (killed, say) would draw into a pipe nobody reads, forever; ``dashboard_command`` execs the tab so
    that the server is its parent."""
    server = os.getppid()
    return lambda: os.getppid() == server


def serve_dashboard(paths: list[Path], *, interval: float, host: str, port: int) -> None:
    """Serve the dashboard of ``paths`` at http://host:port until Ctrl-C; BadInput when it cannot."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise BadInput(ENABLE_HINT) from None
    if not 0 < port < 65536:
        raise BadInput(f"--port must be between 1 and 65535, not {port}")
    check_free(host, port)

    class DashboardServer(Server):
        async def on_startup(self, app) -> None:  # one line instead of textual-serve's banner, once it listens
            self.announcement = asyncio.create_task(announce_when_listening(self.public_url, host, port, paths))

    server = DashboardServer(dashboard_command(paths, interval), host=host, port=port, title="vmcr2 watch")
    try:
        server.serve()
    except OSError as error:  # taken between the check and the bind
        raise _cannot_listen(host, port, error) from None


async def announce_when_listening(url: str, host: str, port: int, paths: list[Path]) -> None:
    """Print the URL once a connection to it succeeds: aiohttp runs startup hooks before it listens."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        break
    print(f"serving the dashboard of {', '.join(map(str, paths))} at {url} (Ctrl-C stops it)", flush=True)


def check_free(host: str, port: int) -> None:
    """BadInput, in one line, when ``host:port`` cannot be listened on (in use, or not this machine's)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a port in
            probe.bind((host, port))  # TIME_WAIT after an earlier server is free, one listened on is not
    except socket.gaierror:
        raise BadInput(f"--host {host}: not an address of this machine") from None
    except OSError as error:
        raise _cannot_listen(host, port, error) from None


def _cannot_listen(host: str, port: int, error: OSError) -> BadInput:
    return BadInput(f"--serve: cannot listen on {host}:{port} ({error.strerror or error})")
