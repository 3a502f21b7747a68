"""Start the real console in a subprocess and drive it with Debian's Chromium (tests and bench)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
# WebGL pages (the Rerun viewer) need software GL when there is no GPU.
SOFTWARE_GL_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
STARTUP_TIMEOUT_S = 120
UNAUTHORIZED = 401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def console_process(*args: str, log_path: Path):
    """Run `app.py` on 127.0.0.1 with `args`; yields (base_url, process); SIGTERM at the end."""
    port = free_port()
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"console exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/feeds/head.jpg", timeout=2).read()
                break
            except urllib.error.HTTPError as err:
                if err.code == UNAUTHORIZED:
                    break  # up, and asking for a login
                if time.monotonic() > deadline:
                    raise RuntimeError(f"console did not start in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")
                time.sleep(0.5)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"console did not start in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000, extra_args: tuple[str, ...] = ()):
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("Debian's chromium is not installed: run scripts/setup.sh --browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def wait_for_instruction(page, text: str = "block", timeout_ms: int = 60_000) -> None:
    """Wait until the instruction box holds `text`: the page's load event has run (it fills in the
    scene's instruction), so the Gradio client is connected and its buttons act."""
    page.wait_for_function(
        "text => { const box = document.querySelector('#instruction textarea'); return box && box.value.includes(text); }",
        arg=text, timeout=timeout_ms,
    )


def shown_width(page, element_id: str, timeout_ms: int = 5_000) -> int:
    """The pixel width of the picture an <img> shows. A live picture gets a new src many times a
    second and its naturalWidth reads 0 while that one decodes, so wait for a decoded picture."""
    width = page.wait_for_function(  # read in the same evaluation: by the next one a new src may be decoding
        "id => { const img = document.getElementById(id); return img && img.complete && img.naturalWidth; }",
        arg=element_id, timeout=timeout_ms, polling=10,
    )
    return width.json_value()
