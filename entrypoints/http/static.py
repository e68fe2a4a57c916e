"""The chat page: / and /static/<file> from entrypoints/web/."""
from __future__ import annotations

from pathlib import Path

import tornado.web

from entrypoints.http.base import ServerHeader, cors_headers
from entrypoints.http.errors import finish_with_error
from entrypoints.http.page_headers import set_page_headers

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class IndexHandler(ServerHeader, tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        super().set_default_headers()
        set_page_headers(self)  # on its errors too: Tornado sets these again after clear()

    def write_error(self, status_code: int, **kwargs) -> None:
        finish_with_error(self, status_code)  # the contract's error shape here too

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((WEB_DIR / "index.html").read_bytes())


# The browser client (docs/browser-client.md): a page on another origin imports it from
# here, which a module script may only do with CORS. The same origins as the API's.
CLIENT_MODULES = frozenset({"courier.js", "courier-http.js", "courier-socket.js", "courier-events.js"})


class StaticHandler(ServerHeader, tornado.web.StaticFileHandler):
    def set_default_headers(self) -> None:
        super().set_default_headers()
        set_page_headers(self)

    def set_extra_headers(self, path: str) -> None:
        if path in CLIENT_MODULES:
            for name, value in cors_headers(self.request.headers.get("Origin"), self.settings.get("courier_origins")):
                self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs) -> None:
        finish_with_error(self, status_code)  # the contract's error shape here too

    def parse_url_path(self, url_path: str) -> str:
        """No file has a NUL in its name, and the OS refuses a path with one: Tornado met
        it as a ValueError (os.path.realpath) and answered 500 with an ERROR traceback,
        which anyone could send to fill the log. There is no such file: 404."""
        if "\x00" in url_path:
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(url_path)


def routes() -> list:
    return [
        (r"/", IndexHandler),
        (r"/static/(.*)", StaticHandler, {"path": str(WEB_DIR)}),
    ]
