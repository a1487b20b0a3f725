"""Start a chat app as a real Chainlit server and drive it with headless Chromium.

Used by the UI tests and by `screenshot.py` (the README screenshots), so both
see the apps the same way a reader does:

- `chainlit_server(app, workdir, env)`: `chainlit run APP --headless` on
  127.0.0.1 on a free port, started from `workdir` (Chainlit writes
  `chainlit.md`, `.chainlit/` and `.files/` into its working folder), waited
  for until it answers HTTP, and stopped (with its process group) on exit,
  also when the code inside fails.
- `chromium_browser()`: Debian's Chromium (no browser download is possible)
  driven by Playwright, with the flags that keep it from reaching the internet.
- `open_chat`, `send_message`, `last_answer`: what a person does in the page.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Straight to 127.0.0.1, never through a proxy. (urllib.request.urlopen keeps the
# proxies it saw on its first call in this process, and a test that cut off the
# network with a dead proxy may have made that call.)
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT = 180  # seconds: importing torch, Chainlit and the model on a busy machine
ANSWER_TIMEOUT_MS = 60_000


def missing_requirements():
    """Why the browser tests cannot run here (None when they can)."""
    if _missing_module("chainlit"):
        return "chainlit is not installed (pip install -r tests/requirements.txt)"
    if _missing_module("playwright"):
        return "playwright is not installed (pip install -r tests/requirements.txt)"
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def _missing_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChainlitServer:
    """A `chainlit run` process serving one app on 127.0.0.1 (see `chainlit_server`)."""

    def __init__(self, app, workdir, env=None):
        self.app, self.workdir = Path(app).resolve(), Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.workdir / "server.log"
        environment = {**os.environ, "CHAINLIT_TELEMETRY": "false", **(env or {})}
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chainlit", "run", str(self.app), "--headless",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group: stop() ends all of it

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self, timeout=SERVER_START_TIMEOUT):
        """Block until the server answers HTTP; RuntimeError (with its log) if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app.name} exited with {self.process.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                with DIRECT.open(self.url, timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.app.name} did not answer within {timeout} s:\n"
                           f"{self.log()[-3000:]}")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def chainlit_server(app, workdir, env=None):
    """A running server for `app` (already answering HTTP); stopped on exit, even on failure."""
    server = ChainlitServer(app, workdir, env)
    try:
        yield server.wait_until_ready()
    finally:
        server.stop()


@contextlib.contextmanager
def chromium_browser(playwright):
    """Headless Debian Chromium, closed on exit.

    Playwright gives every launch a fresh temporary profile (its own
    --user-data-dir), so no state of an earlier run or of the user leaks in.
    """
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=CHROMIUM_FLAGS)
    try:
        yield browser
    finally:
        browser.close()


def _local_only(route):
    """Let requests to the app through; the page's fonts and CDN files cannot be reached."""
    if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
        route.continue_()
    else:
        route.abort()


def open_chat(browser, server, height=700):
    """A new page on the app (`height` pixels tall), after the app's first message appeared."""
    page = browser.new_page(viewport={"width": 1100, "height": height})
    page.route("**/*", _local_only)
    page.goto(server.url)
    page.locator(".step").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    return page


def send_message(page, text):
    """Type `text` into the message box and press Enter, as a person does."""
    box = page.locator("textarea").first
    box.fill(text)
    box.press("Enter")


def last_answer(page, count):
    """The text of the app's `count`-th message, once it has finished streaming."""
    answer = page.locator(".step[data-step-type='assistant_message']").nth(count - 1)
    answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
    # While an answer streams, the message box's send button is replaced by a stop button.
    page.locator("#stop-button").wait_for(state="detached", timeout=ANSWER_TIMEOUT_MS)
    return answer.inner_text().strip()
