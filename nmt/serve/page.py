"""The page nmt-serve shows at ``/``: plain HTML, CSS and JavaScript from ``static/`` in this
package, no build step and nothing fetched from another host, so it works offline.

``/`` is static/index.html; ``/static/<name>`` the files beside it (only those: a name is looked
up in the folder's listing, never joined to a path). The page talks to the JSON routes: it
translates through ``/translator/translate`` (the same batching as every client) and, when a
character model is served, looks inside it through ``/lm/``.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nmt.serve.body import error

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of static/ by name: its bytes and content type (read once, at start)."""
    folder = resources.files("nmt.serve") / "static"
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in TYPES:
            out[entry.name] = (entry.read_bytes(), TYPES[suffix])
    return out


def page_routes() -> list[Route]:
    files = static_files()
    headers = {"cache-control": "no-cache"}

    async def index(request: Request) -> Response:
        body, kind = files["index.html"]
        return Response(body, media_type=kind, headers=headers)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return error(404, f"no file {name!r} in the page's static files")
        body, kind = files[name]
        return Response(body, media_type=kind, headers=headers)

    return [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
