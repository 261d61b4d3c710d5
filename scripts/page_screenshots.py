"""The README's pictures of nmt-serve's page: start the server with a translation model and a
character model, drive the page in headless Chromium (the system's, through Playwright), save
the translation view and the char-rnn view as PNGs.

    python scripts/page_screenshots.py --ckpt runs/en_ja_small/checkpoints/best.pt \
        --lm runs/char_rnn/lm.pt --out docs/img
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LINES = ["Where is the station?", "My brother went to Kyoto last year with his friends."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--lm", required=True)
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "nmt.cli.serve", f"ckpt={args.ckpt}", f"lm={args.lm}", f"port={port}"]
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/translator/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 760}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#beam", "3")
            page.locator("#source").press_sequentially("\n".join(LINES), delay=10)
            page.wait_for_function("(n) => document.querySelectorAll('#results .result').length === n", arg=2)
            page.wait_for_timeout(1500)
            page.locator("#results .result").nth(1).click()
            page.locator("#attention tbody th").nth(2).hover()
            page.screenshot(path=str(out / "page_translate.png"), full_page=True)
            page.click("#tab-charrnn")
            page.fill("#prime", 'The temple (built in 1633) is called "')
            page.fill("#length", "160")
            page.click("#sample")
            page.wait_for_selector("#cells .col")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "page_charrnn.png"), full_page=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    print(f"wrote {out / 'page_translate.png'} and {out / 'page_charrnn.png'}")


if __name__ == "__main__":
    main()
