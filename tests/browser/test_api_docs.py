"""/api/docs in a real browser: Swagger UI renders from this server's files alone."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_api_docs_render_offline_with_no_request_to_another_host(browser, operator):
    browser.log_in("operator")
    browser.get("/api/docs")
    browser.wait_text(".swagger-ui .info .title", "jeeves-runner API")
    browser.wait_text(".swagger-ui .opblock-summary", "/api/jobs")
    assert "Bearer <token>" in browser.find(".swagger-ui .info .description").text
    loaded = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert loaded, "the page loaded nothing"
    elsewhere = [url for url in loaded if not url.startswith(browser.base_url)]
    assert elsewhere == []
