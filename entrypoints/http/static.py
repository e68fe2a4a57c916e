"""The chat page: / and /static/<file> from entrypoints/web/."""
from __future__ import annotations

from pathlib import Path

import tornado.web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class IndexHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((WEB_DIR / "index.html").read_bytes())


def routes() -> list:
    return [
        (r"/", IndexHandler),
        (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(WEB_DIR)}),
    ]
