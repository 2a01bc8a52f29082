"""``vmcr2 watch --serve``: the dashboard over textual-serve — its output read from the websocket a browser
uses, in a real headless chromium where one is installed — and the serve options' bad inputs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import vmcr2
from eval_fixtures import train_tiny

pytest.importorskip("textual_serve")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_screenshot.py"
INTRO_BACKGROUND = (12, 24, 31)  # #0c181f, the page textual-serve shows until the app's first bytes
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("serve") / "runs", "--epochs", "1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run: Path, port: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "vmcr2_cli", "watch", str(run), "--serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    match = re.search(r"at (http://\S+) \(Ctrl-C stops it\)", line)
    if match is None:
        server.kill()
        pytest.fail(f"no URL line: {line!r}{server.stdout.read()}")
    return server, match.group(1)


async def dashboard_text(url: str, wanted: str, seconds: float = 90.0) -> str:
    """What the served dashboard draws, as a browser tab's websocket receives it, until ``wanted`` shows."""
    import aiohttp

    text = ""
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as page:
            assert "/ws" in await page.text()  # the page a browser loads points its terminal at the websocket
        async with session.ws_connect(url.replace("http", "ws") + "/ws?width=160&height=40") as socket_:
            async def read() -> None:
                nonlocal text
                async for message in socket_:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        text += ANSI.sub("", message.data.decode("utf-8", "replace"))
                    if wanted in text:
                        return

            await asyncio.wait_for(read(), seconds)
    return text


def test_the_served_dashboard_shows_the_run_table_and_ctrl_c_stops_it(run):
    server, url = start_server(run, free_port())
    try:
        assert url.startswith("http://127.0.0.1:")  # this machine only, unless --host says otherwise
        text = asyncio.run(dashboard_text(url, run.name))
        assert run.name in text and "finished" in text
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=30)
    assert code == 0


def test_a_tabs_dashboard_ends_when_its_server_is_killed(run):
    server, url = start_server(run, free_port())

    async def killed_while_watched() -> int:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url.replace("http", "ws") + "/ws?width=120&height=40") as socket_:
                await socket_.receive(timeout=60)  # the tab's dashboard is running
                dashboard = int(subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                               text=True).stdout.split()[0])
                server.kill()  # no clean-up: what a crash or SIGKILL leaves
                server.wait(timeout=30)
                return dashboard

    dashboard = asyncio.run(killed_while_watched())
    deadline = time.monotonic() + 30
    while Path(f"/proc/{dashboard}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{dashboard}").exists(), "the dashboard outlived its server"


def test_a_port_in_use_is_one_line_and_exit_code_2(run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = vmcr2("watch", str(run), "--serve", "--port", str(port), capsys=capsys)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--host", "no-such-host.invalid"], "not an address of this machine"),
    (["--port", "70000"], "--port must be between 1 and 65535"),
])
def test_bad_serve_options_are_one_line_and_exit_code_2(run, capsys, args, message):
    code, _, err = vmcr2("watch", str(run), "--serve", *args, capsys=capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_without_textual_serve_one_line_says_how_to_install_it(run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    code, _, err = vmcr2("watch", str(run), "--serve", capsys=capsys)
    assert code == 2 and "pip install 'vmcr2[serve]'" in err and err.count("\n") == 1


@pytest.mark.skipif(not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no chromium here (apt-get install chromium)")
def test_a_headless_chromium_receives_and_draws_the_dashboard(run, tmp_path):
    from PIL import Image

    process = subprocess.run([sys.executable, str(SCRIPT), str(run), "--out", str(tmp_path / "page.png")],
                             capture_output=True, text=True, timeout=180)
    assert process.returncode == 0, process.stdout + process.stderr
    assert json.loads(process.stdout)["dashboard_arrived"]
    with Image.open(tmp_path / "page.png") as page:
        _, commonest = max(page.convert("RGB").getcolors(maxcolors=1 << 24))
    assert commonest != INTRO_BACKGROUND  # the terminal covers the page: not textual-serve's waiting screen
