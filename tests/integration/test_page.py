"""nmt-serve's page and char-rnn routes, over real HTTP on loopback, then in a real browser.

The server runs as a user starts it (``nmt-serve ckpt=... lm=...``) with the toy model and a tiny
character model. The HTTP tests check the per-item search settings, the attention, the char-rnn
routes and the security headers against the library; the browser tests (headless Chromium, the
system's, driven by Playwright) type into the page, wait for the translation, read the attention
grid, try to inject markup, sample from the character model and save screenshots (into
``$NMT_SCREENSHOTS`` when set). Without a Chromium they are skipped, unless
``NMT_REQUIRE_BROWSER=1`` (CI sets it) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nmt.api import load_translator
from nmt.config import Precision, SearchConfig, SearchMethod
from nmt.data.toy import make_pairs
from nmt.lm import load_lm, sample
from nmt.serve.lm import look
from nmt.translator import Options
from tests.conftest import ToyRun
from tests.helpers import run_cli
from tests.integration.test_serve import Server, launch

pytestmark = pytest.mark.slow

PAIRS = make_pairs(30, seed=29)
TEXT = 'She said "come (now)" and left.\nHe said "no" (twice), then [more].\n' * 120
SERVED_BEAM = 3  # the served model's own search: beam 3


@pytest.fixture(scope="module")
def lm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("page_lm")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    proc = run_cli(
        "lm", f"text={root / 'text.txt'}", f"run_dir={root / 'run'}", "train.max_time=0", "train.max_steps=40",
        "train.eval_every=20", "train.seq_len=32", "train.batch=8", "model.hidden=24", "model.layers=2",
        "device=cpu", cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return root / "run" / "lm.pt"


def serving(cwd: Path, *args: str):  # noqa: ANN201 - a context manager of Server
    return launch(cwd, "precision=fp32", *args)


@pytest.fixture(scope="module")
def server(toy_run: ToyRun, lm_ckpt: Path) -> Iterator[Server]:
    args = (f"ckpt={toy_run.best}", f"lm={lm_ckpt}", "search=beam", f"search.beam_size={SERVED_BEAM}")
    with serving(toy_run.root, *args) as s:
        yield s


def get_raw(
    server: Server, path: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# ------------------------------------------------------------------------------------- HTTP


def test_the_page_is_served_under_a_strict_policy(server: Server) -> None:
    status, headers, body = get_raw(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/static/app.js" defer>' in body
    status, headers, js = get_raw(server, "/static/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"textContent" in js
    for path, method in [("/", "GET"), ("/static/app.js", "GET"), ("/static/nope.js", "GET"), ("/", "POST")]:
        status, headers, _ = get_raw(server, path, method, b"" if method == "POST" else None)
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    for bad in ["/static/nope.js", "/static/..%2F..%2Fapi.py", "/static/page.py"]:
        status, _, body = get_raw(server, bad)
        assert status == 404 and json.loads(body)["status"] == "error"


def test_an_item_may_ask_for_its_own_search_and_the_attention(server: Server, toy_run: ToyRun) -> None:
    lines = [s for s, _ in PAIRS[:4]]
    items = [{"src": s, "beam_size": 4, "n_best": 3, "alpha": 1.0, "attention": True} for s in lines]
    status, out, _ = server.translate(items)
    assert status == 200 and len(out) == 3  # one list per rank
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=4, nbest=3, alpha=1.0)
    tr, _ = load_translator(toy_run.best, torch.device("cpu"), cfg, Options(precision=Precision.fp32))
    want = tr.translate_detailed(lines, with_attention=True)
    for j, t in enumerate(want):
        assert [out[k][j]["tgt"] for k in range(3)] == [text for text, _, _ in t.nbest]
        assert [out[k][j]["pred_score"] for k in range(3)] == pytest.approx(
            [s for _, s, _ in t.nbest], abs=1e-4
        )
        first = out[0][j]
        assert first["src_pieces"] == t.src_pieces and first["tgt_pieces"] == t.tgt_pieces
        assert len(first["attention"]) == len(first["tgt_pieces"]) == len(first["replaced"])
        assert all(len(row) == len(first["src_pieces"]) for row in first["attention"])
        assert all(sum(row) == pytest.approx(1.0, abs=2e-3) for row in first["attention"])
        assert "attention" not in out[1][j]  # only the first rank carries it


def test_items_with_other_settings_share_a_request(server: Server) -> None:
    a, b = PAIRS[0][0], PAIRS[1][0]
    own = server.translate([{"src": a}, {"src": b}])[1]
    greedy = server.translate([{"src": a, "beam_size": 1}, {"src": b, "beam_size": 1}])[1]
    mixed = server.translate([{"src": a}, {"src": b, "beam_size": 1}, {"src": a, "attention": True}])[1]
    assert [r["tgt"] for r in mixed[0]] == [own[0][0]["tgt"], greedy[0][1]["tgt"], own[0][0]["tgt"]]
    assert "attention" in mixed[0][2] and "attention" not in mixed[0][0]


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"beam_size": 0}, '"beam_size" must be an integer from 1 to 16'),
        ({"beam_size": 17}, '"beam_size" must be an integer from 1 to 16'),
        ({"beam_size": "3"}, '"beam_size" must be an integer'),
        ({"alpha": -1}, '"alpha" must be a number from 0 to 5'),
        ({"alpha": True}, '"alpha" must be a number'),
        ({"beam_size": 2, "n_best": 3}, '"n_best" must be an integer from 1 to beam_size (2)'),
        ({"attention": "yes"}, '"attention" must be true or false'),
    ],
)
def test_bad_settings_are_refused_alone(server: Server, item: dict, words: str) -> None:
    status, out, _ = server.translate([{"src": PAIRS[0][0]}, {"src": PAIRS[1][0], **item}])
    assert status == 400 and out["error"].startswith("item 1: ") and words in out["error"], out


def test_the_char_rnn_routes_match_the_library(server: Server, lm_ckpt: Path) -> None:
    model, vocab, _ = load_lm(lm_ckpt, torch.device("cpu"))
    status, info, _ = server.request("/lm/info")
    assert status == 200 and (info["layers"], info["units"], info["symbols"]) == (2, 24, len(vocab))
    body = {"prime": 'She said "', "temperature": 0.7, "length": 60, "seed": 5}
    status, got, _ = server.request("/lm/sample", json.dumps(body).encode())
    assert status == 200 and got["text"] == sample(model, vocab, 'She said "', 60, 0.7, 0, 5)
    text = TEXT[:90]
    status, seen, _ = server.request("/lm/look", json.dumps({"text": text}).encode())
    assert status == 200 and seen["chars"] == list(text) and seen["layer"] == 1 and seen["units"] == 24
    assert len(seen["activations"]) == len(seen["next"]) == len(text)
    assert all(-1 <= v <= 1 for v in seen["activations"])
    assert sorted(r["unit"] for r in seen["ranking"]) == list(range(24))
    strength = [abs(r["r"]) for r in seen["ranking"]]
    assert strength == sorted(strength, reverse=True) and seen["unit"] == seen["ranking"][0]["unit"]
    for guesses in seen["next"]:
        probs = [p for _, p in guesses]
        assert len(guesses) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
    want = look(model, vocab, text, 0, 7)
    status, unit7, _ = server.request("/lm/look", json.dumps({"text": text, "layer": 0, "unit": 7}).encode())
    assert unit7["unit"] == 7 and unit7["activations"] == pytest.approx(want["activations"], abs=1e-3)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/lm/sample", {"temperature": 0}, '"temperature" must be a number from 0.01 to 10'),
        ("/lm/sample", {"length": 5000}, '"length" must be an integer from 1 to 2000'),
        ("/lm/sample", {"prime": 5}, '"prime" must be a string'),
        ("/lm/sample", [1], "must be a JSON object"),
        ("/lm/look", {"text": "x"}, "at least 2 characters"),
        ("/lm/look", {"text": "x" * 3001}, "at most 3000"),
        ("/lm/look", {"text": "abc", "layer": 2}, '"layer" must be an integer from -2 to 1'),
        ("/lm/look", {"text": "abc", "unit": 24}, '"unit" must be an integer from 0 to 23'),
    ],
)
def test_bad_char_rnn_requests_get_json_errors(server: Server, path: str, body: object, words: str) -> None:
    status, out, _ = server.request(path, json.dumps(body).encode())
    assert status == 400 and words in out["error"], out


def test_a_server_of_a_character_model_alone(toy_run: ToyRun, lm_ckpt: Path) -> None:
    with serving(toy_run.root, f"lm={lm_ckpt}") as s:
        assert get_raw(s, "/")[0] == 200 and s.request("/translator/models")[:2] == (200, [])
        status, out, _ = s.translate([{"src": "red cat"}])
        assert status == 404 and "no translation model is served" in out["error"]
        assert s.request("/lm/info")[0] == 200


# ------------------------------------------------------------------------------------ browser


def chromium() -> str | None:
    for name in (os.environ.get("NMT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    required = os.environ.get("NMT_REQUIRE_BROWSER") == "1"
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install playwright)")
    if path is None:
        if required:
            pytest.fail("NMT_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("no Chromium (apt-get install chromium, or NMT_CHROMIUM=/path/to/it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.goto(f"http://127.0.0.1:{server.port}/")
    pg.wait_for_selector("body[data-ready=true]")
    yield pg
    context.close()
    assert problems == []  # no script error, no alert, nothing the policy had to block


def screenshot(page: object, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("NMT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)  # type: ignore[attr-defined]
    assert (folder / name).stat().st_size > 1000


@pytest.mark.browser
def test_typing_translates_and_draws_the_attention(page: object, server: Server, tmp_path: Path) -> None:
    lines = [PAIRS[2][0], PAIRS[3][0]]
    page.fill("#beam", "3")  # type: ignore[attr-defined]
    page.locator("#source").press_sequentially(lines[0] + "\n" + lines[1], delay=5)  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelectorAll('#results .result').length === 2")  # type: ignore[attr-defined]
    want = server.translate(
        [{"src": s, "beam_size": 3, "n_best": 3, "alpha": 0.6, "attention": True} for s in lines]
    )[1]
    page.wait_for_function(  # type: ignore[attr-defined]
        "(want) => [...document.querySelectorAll('#results .best')].map(e => e.textContent).join('\\n') === want",
        arg="\n".join(r["tgt"] for r in want[0]),
    )
    assert page.locator("#results .result").nth(0).locator(".nbest li").count() == 3  # type: ignore[attr-defined]
    first = want[0][0]
    cells = page.locator("#attention td.cell")  # type: ignore[attr-defined]
    assert cells.count() == len(first["src_pieces"]) * len(first["tgt_pieces"])
    assert page.locator("#attention thead th.src-piece").count() == len(first["src_pieces"])  # type: ignore[attr-defined]
    row = max(range(len(first["tgt_pieces"])), key=lambda t: max(first["attention"][t]))
    page.locator("#attention tbody th").nth(row).hover()  # type: ignore[attr-defined]
    lit = page.locator("#attention thead th.lit")  # type: ignore[attr-defined]
    peak = max(range(len(first["src_pieces"])), key=lambda s: first["attention"][row][s])
    assert lit.count() >= 1 and page.locator("#attention thead th.src-piece").nth(peak).get_attribute(
        "class"
    ).endswith("lit")  # type: ignore[attr-defined]
    page.locator("#results .result").nth(1).click()  # type: ignore[attr-defined]
    second = want[0][1]
    assert cells.count() == len(second["src_pieces"]) * len(second["tgt_pieces"])
    screenshot(page, tmp_path, "page_translate.png")


@pytest.mark.browser
def test_the_glossary_puts_its_terms_into_the_lines_that_have_its_words(page: object, server: Server) -> None:
    """ "TREE = sakana" applies to a line with the word tree (any case), and its output contains
    sakana, which the model would not write there; "tre = kuro" matches no whole word, and a line
    without tree is translated as without the glossary."""
    lines = ["small tree green small", "sees dog eats cat"]
    page.click("#glossary-panel summary")  # type: ignore[attr-defined]
    page.fill("#glossary", "TREE = sakana\ntre = kuro\nnot an entry")  # type: ignore[attr-defined]
    page.fill("#source", "\n".join(lines))  # type: ignore[attr-defined]
    base = {"beam_size": 5, "n_best": 3, "alpha": 0.6, "attention": True}
    plain = server.translate([{"src": s, **base} for s in lines])[1]
    termed = server.translate([{"src": lines[0], "constraints": ["sakana"], **base}])[1]
    assert "sakana" not in plain[0][0]["tgt"].split() and "sakana" in termed[0][0]["tgt"].split()
    want = [termed[0][0]["tgt"], plain[0][1]["tgt"]]
    page.wait_for_function(  # type: ignore[attr-defined]
        "(want) => [...document.querySelectorAll('#results .best')].map(e => e.textContent).join('\\n') === want",
        arg="\n".join(want),
    )
    terms = page.locator("#results .result").nth(0).locator(".terms")  # type: ignore[attr-defined]
    assert terms.text_content() == "terms: sakana"
    assert page.locator("#results .result").nth(1).locator(".terms").count() == 0  # type: ignore[attr-defined]


@pytest.mark.browser
def test_typed_markup_is_shown_as_text(page: object) -> None:
    typed = [
        "<script>window.__pwned = 1</script> red cat",
        '<img src=x onerror="window.__pwned = 2"> big dog',
    ]
    page.fill("#source", "\n".join(typed))  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelectorAll('#results .result').length === 2")  # type: ignore[attr-defined]
    assert page.locator("#results .src").all_text_contents() == typed  # type: ignore[attr-defined]
    assert page.locator("main img, main script").count() == 0  # type: ignore[attr-defined]
    assert page.evaluate("() => window.__pwned") is None  # type: ignore[attr-defined]


@pytest.mark.browser
def test_model_output_is_shown_as_text_and_copied_words_are_marked(page: object) -> None:
    """The server's answer is replaced by one whose every string is markup; none of it may run."""
    evil = '<img src=x onerror="window.__pwned = 3">'
    answer = [[{
        "src": "Kyoto", "tgt": evil, "n_best": 1, "pred_score": -1.0,
        "src_pieces": ["\u2581<b>Kyoto</b>"], "tgt_pieces": ["\u2581<i>x</i>", "<unk>", "</s>"],
        "attention": [[1.0], [1.0], [1.0]], "replaced": [None, "<b>Kyoto</b>", None],
    }]]  # fmt: skip
    page.route(  # type: ignore[attr-defined]
        "**/translator/translate",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(answer)),
    )
    page.fill("#source", "Kyoto")  # type: ignore[attr-defined]
    page.wait_for_selector("#results .best")  # type: ignore[attr-defined]
    assert page.locator("#results .best").text_content() == evil  # type: ignore[attr-defined]
    marked = page.locator("#attention th.replaced")  # type: ignore[attr-defined]
    assert marked.count() == 1 and marked.text_content() == "<b>Kyoto</b>"
    assert "replace_unk" in marked.get_attribute("title")
    assert page.locator("#attention thead th.src-piece").text_content() == "<b>Kyoto</b>"  # type: ignore[attr-defined]
    assert page.locator("main img, main b, main i").count() == 0  # type: ignore[attr-defined]
    assert page.evaluate("() => window.__pwned") is None  # type: ignore[attr-defined]


@pytest.mark.browser
def test_the_char_rnn_view_samples_and_colours_cells(page: object, server: Server, tmp_path: Path) -> None:
    page.click("#tab-charrnn")  # type: ignore[attr-defined]
    assert page.locator("#view-translate").is_hidden()  # type: ignore[attr-defined]
    page.fill("#prime", 'She said "<img src=x onerror=alert(1)>')  # type: ignore[attr-defined]
    page.locator("#temperature").evaluate(  # type: ignore[attr-defined]
        "e => { e.value = '0.5'; e.dispatchEvent(new Event('input')); }"
    )
    assert page.locator("#temperature-value").text_content() == "0.50"  # type: ignore[attr-defined]
    page.fill("#length", "40")  # type: ignore[attr-defined]
    page.click("#sample")  # type: ignore[attr-defined]
    page.wait_for_selector("#cells .col")  # type: ignore[attr-defined]
    text = page.input_value("#look-text")  # type: ignore[attr-defined]
    assert (
        text.startswith('She said "<img') and len(text) == len('She said "<img src=x onerror=alert(1)>') + 40
    )
    assert page.locator("#sampled .prime").text_content() == 'She said "<img src=x onerror=alert(1)>'  # type: ignore[attr-defined]
    assert page.locator("#cells .col").count() == len(text)  # type: ignore[attr-defined]
    assert page.locator("#cells .guess").count() == 5 * len(text)  # type: ignore[attr-defined]
    options = page.locator("#unit option")  # type: ignore[attr-defined]
    assert options.count() == 24 and " r = " in options.first.text_content()
    seen = server.request("/lm/look", json.dumps({"text": text}).encode())[1]
    assert page.input_value("#unit") == str(seen["unit"])  # type: ignore[attr-defined]
    page.select_option("#unit", str(seen["ranking"][5]["unit"]))  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "(u) => document.getElementById('status').textContent.includes('cell ' + u + ':')",
        arg=seen["ranking"][5]["unit"],
    )
    assert page.locator("main img").count() == 0  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "page_charrnn.png")


@pytest.mark.browser
def test_the_browser_enforces_the_policy(browser: object, server: Server) -> None:
    """An inline script (what an injection would add) is refused by the browser itself."""
    context = browser.new_context()  # type: ignore[attr-defined]
    pg = context.new_page()
    blocked: list[str] = []
    pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    pg.goto(f"http://127.0.0.1:{server.port}/")
    pg.wait_for_selector("body[data-ready=true]")
    pg.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        " document.body.append(s); }"
    )
    assert pg.evaluate("() => window.__inline") is None
    pg.wait_for_timeout(200)
    assert any("inline" in m for m in blocked), blocked
    context.close()
