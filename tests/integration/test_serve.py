"""nmt-serve over real HTTP on loopback: OpenNMT-py's routes, batching, limits, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import nmt
from nmt.data.toy import make_pairs
from tests.conftest import ToyRun

pytestmark = pytest.mark.slow

PAIRS = make_pairs(40, seed=17)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc, self.port = proc, port

    def request(
        self, path: str, body: bytes | None = None, timeout: float = 60
    ) -> tuple[int, dict | list, dict]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method="POST" if body is not None else "GET"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), dict(e.headers)

    def translate(self, items: list, timeout: float = 60) -> tuple[int, dict | list, dict]:
        return self.request("/translator/translate", json.dumps(items).encode(), timeout)


@contextmanager
def serving(toy: ToyRun, *args: str) -> Iterator[Server]:
    with launch(toy.root, f"ckpt={toy.best}", "search=greedy", *args) as server:
        yield server


@contextmanager
def launch(cwd: Path, *args: str) -> Iterator[Server]:
    """``nmt-serve args...`` on a free port, once it answers /translator/health; SIGTERM at the end."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nmt.cli.serve", f"port={port}", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(proc, port)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited")
            try:
                if server.request("/translator/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server(toy_run: ToyRun) -> Iterator[Server]:
    with serving(toy_run, "max_sentences=8", "max_input_len=20") as s:
        yield s


def test_routes_and_translations_match_the_library(server: Server, toy_run: ToyRun) -> None:
    assert server.request("/translator/health")[:2] == (200, {"status": "ok"})
    status, models, _ = server.request("/translator/models")
    assert status == 200 and models[0]["model_id"] == 100 and models[0]["checkpoints"] == [str(toy_run.best)]
    lines = [s for s, _ in PAIRS[:5]] + [""]
    status, out, _ = server.translate(
        [{"id": 100, "src": s} for s in lines[:3]] + [{"src": s} for s in lines[3:]]
    )
    assert status == 200 and len(out) == 1 and len(out[0]) == len(lines)
    want = nmt.load(toy_run.best, device="cpu", search="greedy").translate(lines)
    assert [r["tgt"] for r in out[0]] == want
    assert [r["src"] for r in out[0]] == lines
    assert all(r["n_best"] == 1 for r in out[0]) and out[0][-1]["pred_score"] is None
    assert all(isinstance(r["pred_score"], float) for r in out[0][:-1])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b'{"src": "red cat"}', 400, "non-empty JSON list"),
        (b"[]", 400, "non-empty JSON list"),
        (b'[{"text": "red cat"}]', 400, '"src" must be a string'),
        (b'[{"src": 5}]', 400, '"src" must be a string'),
        (b'[{"id": "100", "src": "red"}]', 400, '"id" must be an integer'),
        (b'[{"id": 7, "src": "red"}]', 404, "no model with id 7"),
        (b'[{"src": "red \\ud800 cat"}]', 400, "lone surrogate"),
        (json.dumps([{"src": "red"}] * 9).encode(), 413, "9 sentences in one request; at most 8"),
        (json.dumps([{"src": "red"}, {"src": " ".join(["cat"] * 40)}]).encode(), 400, "item 1: line has"),
    ],
    ids=[
        "malformed",
        "object",
        "empty",
        "no_src",
        "src_number",
        "id_string",
        "unknown_model",
        "surrogate",
        "too_many",
        "too_long",
    ],
)
def test_bad_requests_get_json_errors(server: Server, body: bytes, status: int, words: str) -> None:
    got, out, _ = server.request("/translator/translate", body)
    assert got == status and out["status"] == "error" and words in out["error"], out


def test_a_bad_request_never_disturbs_the_others(server: Server) -> None:
    good = [{"src": s} for s, _ in PAIRS[:4]]
    want = server.translate(good)[1]
    results: dict[int, tuple] = {}

    def send(k: int) -> None:
        results[k] = server.translate(good if k % 2 == 0 else [{"src": " ".join(["cat"] * 40)}])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k][0] == 200 and results[k][1] == want for k in range(0, 8, 2))
    assert all(results[k][0] == 400 for k in range(1, 8, 2))


def test_concurrent_requests_are_translated_together(toy_run: ToyRun) -> None:
    with serving(toy_run, "wait_ms=200") as s:
        results = []

        def send(k: int) -> None:
            results.append(s.translate([{"src": PAIRS[k][0]}]))

        threads = [threading.Thread(target=send, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r[0] == 200 for r in results)
        stats = s.request("/translator/models")[1][0]
        assert stats["sentences"] == 12 and stats["batches"] < 12  # fewer calls than requests


def test_a_full_queue_answers_503_with_retry_after(toy_run: ToyRun) -> None:
    with serving(toy_run, "wait_ms=500", "queue_limit=2", "max_sentences=1") as s:
        results = []

        def send(k: int) -> None:
            results.append(s.translate([{"src": PAIRS[k][0]}]))

        threads = [threading.Thread(target=send, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r[0] for r in results)
        assert 200 in codes and 503 in codes and set(codes) <= {200, 503}
        refused = [r for r in results if r[0] == 503]
        assert all(r[2].get("retry-after") == "1" and "queue is full" in r[1]["error"] for r in refused)


def test_a_request_past_its_timeout_answers_504(toy_run: ToyRun) -> None:
    with serving(toy_run, "wait_ms=300", "timeout_s=0.05") as s:
        status, out, _ = s.translate([{"src": PAIRS[0][0]}])
        assert status == 504 and "timeout_s=0.05" in out["error"]
        assert s.request("/translator/health")[0] == 200  # the server goes on


def test_sigterm_finishes_the_request_in_flight(toy_run: ToyRun) -> None:
    with serving(toy_run, "wait_ms=1500") as s:
        result: list = []
        sender = threading.Thread(target=lambda: result.append(s.translate([{"src": PAIRS[0][0]}])))
        sender.start()
        time.sleep(0.5)  # the request waits in the batching window
        s.proc.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        assert result and result[0][0] == 200 and result[0][1][0][0]["tgt"]
        assert s.proc.wait(timeout=60) == 0


def test_it_listens_on_loopback_unless_told_otherwise(server: Server) -> None:
    import psutil

    listening = [
        c.laddr
        for c in psutil.Process(server.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", server.port)]


def test_an_ensemble_and_several_models(toy_run: ToyRun) -> None:
    best, last = toy_run.best, toy_run.run_dir / "checkpoints" / "last.pt"
    models = f"models=[{{id:1,ckpt:{best}}},{{id:2,ckpt:[{best},{last}]}}]"
    port = free_port()
    cmd = [sys.executable, "-m", "nmt.cli.serve", models, f"port={port}", "search=greedy"]
    proc = subprocess.Popen(cmd, cwd=toy_run.root, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s = Server(proc, port)
    try:
        for _ in range(300):
            try:
                if s.request("/translator/health", timeout=2)[0] == 200:
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.1)
        status, out, _ = s.translate([{"id": 1, "src": PAIRS[0][0]}, {"id": 2, "src": PAIRS[0][0]}])
        assert status == 200 and all(r["tgt"] for r in out[0])
        assert [m["model_id"] for m in s.request("/translator/models")[1]] == [1, 2]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_serving_never_imports_the_training_package(tmp_path: Path) -> None:
    code = (
        "import sys, nmt.serve.app, nmt.serve.lm, nmt.api, nmt.cli.serve\n"
        "bad = sorted(m for m in sys.modules if m.startswith('nmt.training'))\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_item_may_give_target_terms(server: Server) -> None:
    src = PAIRS[0][0]
    plain = server.translate([{"src": src}])[1][0][0]["tgt"]
    vocab = sorted({w for _, t in PAIRS for w in t.split()} - set(plain.split()))
    status, out, _ = server.translate([{"src": src, "constraints": [vocab[0], vocab[1]]}, {"src": src}])
    assert status == 200, out
    assert {vocab[0], vocab[1]} <= set(out[0][0]["tgt"].split()) and out[0][1]["tgt"] == plain
    for bad, words in [
        ({"constraints": "inu"}, '"constraints" must be a list of non-empty strings'),
        ({"constraints": [""]}, '"constraints" must be a list of non-empty strings'),
        ({"constraints": ["Ω"]}, "item 0: the term 'Ω' has characters the model cannot write"),
        ({"constraints": ["inu"] * 17}, "at most 16 terms"),
        ({"ordered_constraints": 1}, '"ordered_constraints" must be true or false'),
    ]:
        status, out, _ = server.translate([{"src": src, **bad}])
        assert status == 400 and words in out["error"], out
