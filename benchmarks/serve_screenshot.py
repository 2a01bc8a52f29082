"""`vmcr2 watch --serve` in a real headless browser: serve RUNS, open the page in Debian's chromium,
wait for the dashboard's first bytes, and save a screenshot.

    python benchmarks/serve_screenshot.py runs --out benchmarks/figures/watch-serve.png

Prints one JSON line: whether the page received the dashboard (textual-serve marks <body> with
``-first-byte`` once the app's output arrives), the screenshot's path, and the seconds it took.
The browser is driven over the Chrome DevTools protocol with aiohttp (textual-serve's own
dependency), so nothing beyond the `serve` extra and chromium is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def browser() -> str | None:
    import shutil

    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def wait_for_line(stream, pattern: str, seconds: float) -> re.Match:
    """The first line of ``stream`` matching ``pattern`` (the process's startup line)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if match := re.search(pattern, line):
            return match
    raise RuntimeError(f"no line matching {pattern!r} within {seconds} s")


async def screenshot(devtools_port: int, url: str, out: Path, width: int, height: int, wait: float) -> bool:
    """Open ``url`` in the browser's page, wait for the dashboard, save a PNG; whether it arrived."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{devtools_port}/json") as response:
            page = next(target for target in await response.json() if target["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as devtools:
            ids = iter(range(1, 10**6))

            async def call(method: str, **params):
                number = next(ids)
                await devtools.send_json({"id": number, "method": method, "params": params})
                async for message in devtools:
                    reply = json.loads(message.data)
                    if reply.get("id") == number:
                        return reply.get("result", {})
                raise RuntimeError("the browser closed the connection")

            await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                       mobile=False)
            await call("Page.navigate", url=url)
            arrived = False
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not arrived:
                await asyncio.sleep(0.5)
                result = await call("Runtime.evaluate",
                                    expression="document.body.classList.contains('-first-byte')")
                arrived = bool(result.get("result", {}).get("value"))
            await asyncio.sleep(3.0)  # the page fades the terminal in and the dashboard draws its charts
            shot = await call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
            return arrived


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="what vmcr2 watch is given: runs, runs/latest or folders of runs")
    parser.add_argument("--out", type=Path, required=True, help="the screenshot (PNG)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the dashboard")
    args = parser.parse_args()
    chrome = browser()
    if chrome is None:
        print(f"no browser found ({', '.join(BROWSERS)}); apt-get install chromium", file=sys.stderr)
        return 2
    started = time.monotonic()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vmcr2_cli", "watch", *args.runs, "--serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with tempfile.TemporaryDirectory() as profile:
        chromium = subprocess.Popen([chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                     "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = wait_for_line(server.stdout, r"at (http://\S+)", 30).group(1)
            devtools_port = int(wait_for_line(chromium.stderr, r"DevTools listening on ws://[^:]+:(\d+)/", 30).group(1))
            arrived = asyncio.run(screenshot(devtools_port, url, args.out, args.width, args.height, args.wait))
        finally:
            chromium.terminate()
            server.terminate()
            chromium.wait(10)
            server.wait(10)
    print(json.dumps({"dashboard_arrived": arrived, "screenshot": str(args.out),
                      "seconds": round(time.monotonic() - started, 1)}))
    return 0 if arrived else 1


if __name__ == "__main__":
    sys.exit(main())
