"""The headers the chat page and its static files are served with: defence in depth,
should anything ever put a script or a frame where it does not belong.

- Content-Security-Policy: nothing but the page's own files. Scripts and styles only
  from this origin (no inline script, no inline style attribute, no eval), fetches
  and the WebSocket only to this origin ('self' covers ws: and wss: of the same host
  in CSP Level 3 browsers: Chromium, Firefox, Safari 15.4+), no plugins, no <base>,
  no form posted anywhere (the page's forms are handled by its script), and no page
  may frame it (clickjacking). The favicon is a data: URL, hence img-src data:.
- X-Content-Type-Options: nosniff: a file is only ever what its Content-Type says.
- Referrer-Policy: no-referrer: no URL of the page is sent along to anyone."""
from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

PAGE_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def set_page_headers(handler) -> None:
    for name, value in PAGE_HEADERS:
        handler.set_header(name, value)
