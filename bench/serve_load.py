#!/usr/bin/env python3
"""Load test of nmt-serve on loopback: a fixed number of requests at 1, 8 and 32 concurrent clients.

Starts ``nmt-serve`` on a free port (or uses a running one with --url), sends the same requests
from N client threads (each request one sentence of the input file, in turn), and prints
throughput (sentences/s) and latency (p50, p99, in ms) for each concurrency. Never asserts.

  python bench/serve_load.py --ckpt runs/en_ja_small/checkpoints/best.pt \\
      --input ../shared/data/small_parallel_enja_raw/test.en --requests 400 --clients 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def run(url: str, lines: list[str], requests: int, clients: int) -> dict:
    bodies = [json.dumps([{"src": lines[i % len(lines)]}]).encode() for i in range(requests)]
    latencies: list[float] = []
    statuses: list[int] = []
    lock, next_i = threading.Lock(), [0]

    def client() -> None:
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= requests:
                return
            t0 = time.perf_counter()
            status = post(url, bodies[i])
            with lock:
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    latencies.sort()
    return {
        "clients": clients,
        "requests": requests,
        "ok": statuses.count(200),
        "sentences_per_s": round(requests / secs, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path)
    ap.add_argument("--url", help="a running server's base URL (else one is started)")
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--serve-args", default="", help="extra key=value settings for nmt-serve")
    a = ap.parse_args()
    lines = [s for s in a.input.read_text(encoding="utf-8").split("\n") if s.strip()]
    proc = None
    url = a.url
    if url is None:
        if a.ckpt is None:
            ap.error("give --ckpt (or --url of a running server)")
        port = free_port()
        cmd = [sys.executable, "-m", "nmt.cli.serve", f"ckpt={a.ckpt}", f"port={port}", *a.serve_args.split()]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env={**os.environ})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/translator/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    sys.exit(f"serve_load: the server did not start ({' '.join(cmd)})")
                time.sleep(0.2)
    try:
        post(f"{url}/translator/translate", json.dumps([{"src": lines[0]}]).encode())  # warm-up
        print(
            f"{len(lines)} distinct sentences from {a.input}, one per request; {a.serve_args or 'default settings'}"
        )
        print(f"{'clients':>8}{'requests':>10}{'ok':>6}{'sent/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
        for c in (int(x) for x in a.clients.split(",")):
            r = run(f"{url}/translator/translate", lines, a.requests, c)
            print(
                f"{r['clients']:>8}{r['requests']:>10}{r['ok']:>6}{r['sentences_per_s']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}"
            )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
