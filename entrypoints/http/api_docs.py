"""The API's description, served by the API itself: GET /api/v1/openapi.json (the
OpenAPI 3.1 document, rendered from docs/openapi.yaml into entrypoints/web/openapi.json),
and GET /docs, a page that shows it with Swagger UI.

Swagger UI's files come from the swagger-ui-py package (pinned in setup.cfg), which ships
them: they are served from this server, never from a CDN, so /docs works offline and the
page's Content-Security-Policy (page_headers.py: scripts, styles and connections from this
origin only, no inline script) holds for it as for the chat page. Only the two files the
page loads are served from the package; its initializer is ours (entrypoints/web/docs.js),
since the package's own page starts Swagger UI from an inline script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import tornado.web

from entrypoints.http.base import BaseHandler
from entrypoints.http.static import WEB_DIR, IndexHandler, StaticHandler

OPENAPI_PATH = "/api/v1/openapi.json"
VIEWER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})


def viewer_dir() -> Path:
    """swagger-ui-py's folder of Swagger UI's files (found without importing the package,
    whose import pulls in the template engine of its own page, which is not used)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


class OpenApiHandler(BaseHandler):
    """The document as rendered: read once per process."""

    requires_auth = False
    document: bytes | None = None

    def get(self) -> None:
        if OpenApiHandler.document is None:
            OpenApiHandler.document = (WEB_DIR / "openapi.json").read_bytes()
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(OpenApiHandler.document)


class DocsPageHandler(IndexHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((WEB_DIR / "docs.html").read_bytes())


class ViewerFileHandler(StaticHandler):
    """Only the files the page loads: the package holds more (an editor, source maps)."""

    def parse_url_path(self, url_path: str) -> str:
        if url_path not in VIEWER_FILES:
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(url_path)


def routes() -> list:
    return [
        (OPENAPI_PATH, OpenApiHandler),
        (r"/docs", DocsPageHandler),
        (r"/docs/(.*)", ViewerFileHandler, {"path": str(viewer_dir())}),
    ]
