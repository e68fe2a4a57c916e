"""Logging: stderr and, when asked, a file; tokens never reach a log line."""
from __future__ import annotations

import logging
import re
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

# A token can only reach a log through a URL (/ws?token=...) or a header echoed
# in an error; both patterns are masked in every record as a last line of defence,
# and so is anything shaped like a JWT (its header is base64url JSON: "eyJ..."),
# wherever it stands. A URL's query is masked by its parsed names (mask_uri).
_SECRET_NAMES = ("token", "password")
_SECRETS = re.compile(
    r"((?:token|password|access_token)=)[\"']?[^&\s\"']+"
    r"|(Bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?-i:eyJ)[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)


def mask_uri(uri: str) -> str:
    """A request URI for a log line: the value of every query parameter whose name,
    decoded as the server decodes it, holds "token" or "password" is masked. A regex
    on the raw text would miss /ws?tok%65n=..., which Tornado reads as token=."""
    path, question, query = uri.partition("?")
    if question:
        pieces = []
        for piece in query.split("&"):
            name, equals, _ = piece.partition("=")
            decoded = urllib.parse.unquote_plus(name).casefold()
            if equals and any(secret in decoded for secret in _SECRET_NAMES):
                piece = name + "=***"
            pieces.append(piece)
        uri = path + "?" + "&".join(pieces)
    return mask_secrets(uri)


class MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str, log_file: str = "") -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(MaskSecrets())
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin, at every start


_ACCESS = logging.getLogger("tornado.access")  # once: getLogger takes the logging module's lock


def log_request(handler) -> None:
    """Tornado's access log line, with the token of a /ws?token=... masked."""
    request = handler.request
    log_access(handler.get_status(), request.method, request.uri, request.remote_ip, request.request_time)


def log_access(status: int, method: str, uri: str, remote_ip: str, duration: Callable[[], float]) -> None:
    """One access log line (Tornado's format); `duration()` gives the request's seconds
    (asked only when the line is written)."""
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access = _ACCESS
    if not access.isEnabledFor(level):
        return  # at warning (benchmarks, high rates) a 2xx costs nothing more: no masking, no formatting
    access.log(level, "%d %s %s (%s) %.2fms", status, method, mask_uri(uri), remote_ip, 1000.0 * duration())
