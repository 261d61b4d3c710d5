"""nmt-serve against hostile clients, over real HTTP on loopback, every test bounded in time.

The app (``create_app``) and its HTTP protocol (``protocol_class``) run under uvicorn in a thread
of the test process, serving the toy model, so a test can make a translation fail or give the
model Moses text processing; start-up checks run the real ``nmt-serve``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import torch

from nmt.api import load_translator
from nmt.config import DataConfig, Pretokenize, SearchConfig, SearchMethod, TextConfig
from nmt.data.text import TextProcessor
from nmt.data.toy import make_pairs
from nmt.serve.app import Limits, Served, create_app
from nmt.serve.http import protocol_class
from nmt.translator import Options, Translation, Translator
from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

uvicorn = pytest.importorskip("uvicorn")
PAIRS = make_pairs(20, seed=23)
GREEDY = SearchConfig(method=SearchMethod.greedy)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, path: str, body: bytes | None = None, method: str | None = None, timeout: float = 30
    ) -> tuple[int, object]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method=method or ("POST" if body is not None else "GET"),
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())  # every error is JSON, or this raises

    def translate(self, items: list, timeout: float = 30) -> tuple[int, object]:
        return self.request("/translator/translate", json.dumps(items).encode(), timeout=timeout)

    def health_seconds(self) -> float:
        t0 = time.perf_counter()
        assert self.request("/translator/health", timeout=10) == (200, {"status": "ok"})
        return time.perf_counter() - t0

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@contextmanager
def serving(translator: Translator, head_timeout_s: float = 10.0, **limits: object) -> Iterator[Client]:
    port = free_port()
    app = create_app([Served(100, ["toy"], translator)], Limits(**limits))  # type: ignore[arg-type]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol_class(head_timeout_s), log_level="critical"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client = Client(port)
    for _ in range(200):
        try:
            client.health_seconds()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def translator(toy_run: ToyRun) -> Translator:
    return load_translator(toy_run.best, torch.device("cpu"), GREEDY)[0]


def failing_on(translator: Translator, word: str) -> Translator:
    """The translator, raising for any batch that holds ``word`` (a bug the checks let through)
    and taking half a second over a batch that holds "slow"."""
    real = translator.translate_detailed

    def translate_detailed(lines: list[str], *args, **kwargs) -> list[Translation]:  # noqa: ANN002, ANN003
        if any(word in line for line in lines):
            raise RuntimeError(f"the model choked on {word!r}")
        if any("slow" in line for line in lines):
            time.sleep(0.5)
        return real(lines, *args, **kwargs)

    translator.translate_detailed = translate_detailed  # type: ignore[method-assign]
    return translator


def read_response(s: socket.socket, timeout: float = 10) -> tuple[int, dict]:
    """One HTTP response off a socket: its status and JSON body (read to its Content-Length)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int({k.strip().lower(): v for k, v in fields.items()}[b"content-length"])
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "the connection closed inside the body"
        body += chunk
    return int(head.split()[1]), json.loads(body)


def raw(client: Client, data: bytes) -> tuple[int, dict]:
    """Send raw bytes on a new connection; the response's status and JSON body."""
    with client.connect() as s:
        s.sendall(data)
        return read_response(s)


# --------------------------------------------------------------------------- the body


def test_a_body_declared_too_large_is_refused_before_it_is_sent(translator: Translator) -> None:
    with serving(translator, max_body_bytes=1000) as c:
        head = b"POST /translator/translate HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n"
        status, out = raw(c, head + b"[{")  # 5 GB announced, 2 bytes sent
        assert status == 413 and "max_body_bytes=1000" in out["error"]


def test_a_chunked_body_is_refused_once_it_passes_the_limit(translator: Translator) -> None:
    with serving(translator, max_body_bytes=1000) as c, c.connect() as s:
        s.sendall(b"POST /translator/translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # 1,500 bytes: past the limit, and the body has not ended
            s.sendall(b"1f4\r\n" + b" " * 500 + b"\r\n")
        status, out = read_response(s)
        assert status == 413 and "over max_body_bytes=1000" in out["error"]


def test_a_body_that_never_arrives_is_answered_408_and_the_rest_go_on(translator: Translator) -> None:
    with serving(translator, body_timeout_s=0.5) as c:
        head = b"POST /translator/translate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        status, out = raw(c, head + b'[{"src": ')
        assert status == 408 and "body_timeout_s=0.5" in out["error"]
        assert c.translate([{"src": PAIRS[0][0]}])[0] == 200


# --------------------------------------------------------------------------- errors are JSON


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "words"),
    [
        ("/translator/translate", "POST", b"[" * 100_000, 400, "nested too deeply"),
        ("/translator/translate", "POST", b'{"a": ' * 50_000, 400, "nested too deeply"),
        ("/translator/translate", "POST", b'[{"src": ["red"]}]', 400, '"src" must be a string'),
        ("/translator/translate", "POST", b'[{"src": "red", "id": 1.5}]', 400, '"id" must be an integer'),
        ("/translator/translate", "POST", b'[{"src": "red", "id": true}]', 400, '"id" must be an integer'),
        ("/translator/translate", "POST", b"\xff\xfe[]", 400, "not JSON"),
        ("/translator/translate", "POST", b"[1e999999]", 400, "not an object"),
        ("/translator/translate", "GET", None, 405, "Method Not Allowed"),
        ("/translator/nowhere", "GET", None, 404, "Not Found"),
        ("/", "POST", b"[]", 405, "Method Not Allowed"),  # / is the page
    ],
    ids=["nested-lists", "nested-objects", "src-list", "id-float", "id-bool", "bad-utf8", "huge-number"]
    + ["wrong-method", "unknown-route", "root"],
)
def test_every_error_is_json_with_its_status(
    translator: Translator, path: str, method: str, body: bytes | None, status: int, words: str
) -> None:
    with serving(translator) as c:
        got, out = c.request(path, body, method)
        assert got == status and isinstance(out, dict) and out["status"] == "error" and words in out["error"]
        assert c.health_seconds() < 10  # still serving


def test_a_translation_that_raises_is_a_json_500_and_its_batch_mates_get_their_results(
    translator: Translator,
) -> None:
    """Four requests gathered into one batch, one of which makes the model raise: that one gets
    a JSON 500, the other three their own translations (the batch is retried request by request)."""
    good = [[{"src": s}] for s, _ in PAIRS[:3]]
    expected = [translator.translate(item[0]["src"]) for item in good]
    with serving(failing_on(translator, "boom"), wait_ms=300) as c, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(c.translate, item) for item in [*good, [{"src": "boom boom"}]]]
        results = [f.result(timeout=60) for f in futures]
    assert [r[0] for r in results] == [200, 200, 200, 500]
    assert [r[1][0][0]["tgt"] for r in results[:3]] == expected
    assert "RuntimeError" in results[3][1]["error"]


def test_a_failed_batch_never_stalls_the_requests_queued_behind_it(translator: Translator) -> None:
    """One request a batch (batch_words=1). While a slow batch translates, a failing request and
    three good ones queue up; the failing one is taken next and fails, and the three behind it
    are still served at once, not left waiting for an unrelated request until their timeout (504)."""
    failing = failing_on(translator, "boom")
    with serving(failing, wait_ms=1, batch_words=1, timeout_s=5) as c, ThreadPoolExecutor(5) as pool:
        slow = pool.submit(c.translate, [{"src": "slow red"}])
        time.sleep(0.2)  # the slow batch is being translated
        boom = pool.submit(c.translate, [{"src": "boom"}])
        time.sleep(0.05)
        rest = [pool.submit(c.translate, [{"src": s}]) for s, _ in PAIRS[:3]]
        assert slow.result(timeout=60)[0] == 200
        assert boom.result(timeout=60)[0] == 500
        assert [f.result(timeout=60)[0] for f in rest] == [200, 200, 200]


# --------------------------------------------------------------------------- checks off the event loop


def test_health_answers_while_a_large_request_is_checked(translator: Translator) -> None:
    """200 sentences of 15,000 characters through Moses and SentencePiece take seconds to check;
    /health keeps answering meanwhile (the translation itself is stubbed: this is about checks)."""
    translator.text = TextProcessor.from_data(
        DataConfig(name="x", corpus="x", src_text=TextConfig(pretokenize=Pretokenize.moses, lowercase=True))
    )
    translator.options = Options(max_input_len=1_000_000)
    translator.translate_detailed = lambda lines, *a, **k: [Translation("", None, None) for _ in lines]  # type: ignore[method-assign]
    sentence = ("Red cats, who aren't big (really?), sit on 3.5 mats! " * 300)[:15000]
    body = json.dumps([{"src": sentence}] * 200).encode()
    with serving(translator, max_body_bytes=len(body), max_sentences=200) as c:
        big: list = []
        t0 = time.perf_counter()
        sender = threading.Thread(
            target=lambda: big.append(c.request("/translator/translate", body, timeout=120))
        )
        sender.start()
        latencies = []
        while sender.is_alive():
            latencies.append(c.health_seconds())
        took = time.perf_counter() - t0
        assert big and big[0][0] == 200
    assert took > 1.0, took  # the check took long enough for this test to mean something
    assert len(latencies) >= 5 and max(latencies) < took / 4, (took, latencies)


def test_a_sentence_of_two_megabytes_is_refused_at_once(translator: Translator) -> None:
    with serving(translator, max_body_bytes=3 << 20) as c:
        status, out = c.translate([{"src": "red " * 500_000}])
        assert status == 400 and "at most max_input_chars=16000" in out["error"]


# --------------------------------------------------------------------------- slow and half-open connections


def test_slow_and_half_open_connections_do_not_stop_others_being_served(translator: Translator) -> None:
    want = translator.translate(PAIRS[0][0])
    with serving(translator, head_timeout_s=1.0, body_timeout_s=1.0) as c:
        idle = [c.connect() for _ in range(100)]  # connected, nothing sent
        half_head = [c.connect() for _ in range(100)]
        for s in half_head:
            s.sendall(b"POST /translator/translate HTTP/1.1\r\nHost: x\r\nCont")
        half_body = [c.connect() for _ in range(50)]
        for s in half_body:
            s.sendall(b"POST /translator/translate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{")
        assert c.health_seconds() < 5
        status, out = c.translate([{"src": PAIRS[0][0]}])
        assert status == 200 and out[0][0]["tgt"] == want
        time.sleep(2.5)  # past both deadlines: the server has let go of them all
        for s in idle + half_head:
            s.settimeout(5)
            assert s.recv(100) == b"", "a connection without a request head was kept open"
        for s in half_body:
            assert read_response(s)[0] == 408
        for s in idle + half_head + half_body:
            s.close()
        assert c.health_seconds() < 5


# --------------------------------------------------------------------------- start-up


def test_a_queue_smaller_than_a_request_is_refused_at_start(toy_run: ToyRun) -> None:
    proc = run_cli("serve", f"ckpt={toy_run.best}", "queue_limit=10", "max_sentences=20", cwd=toy_run.root)
    line = assert_one_line_error(proc, "nmt-serve")
    assert "queue_limit=10 is below max_sentences=20" in line
