"""The page's static files: everything it shows is put in as text, it loads nothing from another
host, and the files ship inside the package (nmt-serve has no build step)."""

from __future__ import annotations

import re
from importlib import resources

from nmt.serve.page import static_files

STATIC = resources.files("nmt.serve") / "static"


def test_the_page_ships_its_files_in_the_package() -> None:
    files = static_files()
    assert {"index.html", "app.js", "style.css"} <= set(files)
    assert files["app.js"][1].startswith("text/javascript") and files["index.html"][1].startswith("text/html")


def test_the_script_never_writes_markup() -> None:
    """No API that parses a string as HTML or code: whatever the server or the user wrote can
    only ever become text (textContent) or an attribute value."""
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "srcdoc",
    ):
        assert sink not in js, sink
    assert "textContent" in js


def test_nothing_is_loaded_from_another_host_or_inline() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "url(" not in css and "@import" not in css
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']  # no inline script
    assert "<style" not in html and not re.search(r"<[^>]*\sstyle\s*=", html)  # no inline style
    assert not re.search(r"<[^>]*\son\w+\s*=", html)  # no inline event handler
