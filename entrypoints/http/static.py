"""The chat page: / and /static/<file> from entrypoints/web/."""
from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import orjson
import tornado.web

from entrypoints.http.errors import CODE_BY_STATUS

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class IndexHandler(tornado.web.RequestHandler):
    def write_error(self, status_code: int, **kwargs) -> None:
        json_error(self, status_code)

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((WEB_DIR / "index.html").read_bytes())


class StaticHandler(tornado.web.StaticFileHandler):
    def write_error(self, status_code: int, **kwargs) -> None:
        json_error(self, status_code)


def json_error(handler: tornado.web.RequestHandler, status_code: int) -> None:
    """The contract's error shape for these non-API handlers too (404, 405)."""
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    code = CODE_BY_STATUS.get(status_code, "error")
    handler.finish(orjson.dumps({"error": {"code": code, "message": HTTPStatus(status_code).phrase}}))


def routes() -> list:
    return [
        (r"/", IndexHandler),
        (r"/static/(.*)", StaticHandler, {"path": str(WEB_DIR)}),
    ]
