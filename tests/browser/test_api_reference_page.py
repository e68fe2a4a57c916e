"""/docs: the API reference, Swagger UI showing GET /api/v1/openapi.json, with its files
served by Courier itself (nothing from another site) under the chat page's
Content-Security-Policy (the pages fixture fails the test on any violation)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_page_security import directives, headers_of

pytestmark = pytest.mark.browser


def test_the_reference_page_and_its_files_carry_the_page_policy(server):
    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/static/docs.js",
                 "/docs/swagger-editor.js"):
        headers = headers_of(server.base_url + path)
        policy = directives(headers.get("content-security-policy", ""))
        assert policy.get("script-src") == "'self'", (path, headers)
        assert policy.get("style-src") == "'self'", (path, headers)
        assert policy.get("connect-src") == "'self'", (path, headers)
        assert policy.get("default-src") == "'none'", (path, headers)


def test_the_reference_shows_every_operation_and_tries_one_out(server, pages):
    page = pages.open(server.base_url)
    requests_elsewhere = []
    page.on("request", lambda request: request.url.startswith(server.base_url) or requests_elsewhere.append(
        request.url))
    page.goto(server.base_url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert page.locator(".opblock").count() >= 36
    expect(page.locator(".info .title")).to_contain_text("Courier")

    # Try it out: GET /healthz from the page (connect-src 'self').
    block = page.locator("#operations-operations-health")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    expect(block.locator(".responses-table .response .response-col_status").first).to_have_text("200")
    assert requests_elsewhere == []
