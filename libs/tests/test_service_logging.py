"""What a service's log keeps: no request URLs of its HTTP clients (a URL can name a customer)."""

from __future__ import annotations

import logging

import httpx
import pytest

from lampo.service import configure_logging


def test_a_service_log_keeps_no_url_its_http_client_called(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging()
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with caplog.at_level(logging.INFO), httpx.Client(transport=transport) as client:
        logging.getLogger("lampo").info("a line the service keeps")
        client.get("http://registry.test/v1/subjects/900001")
    assert "a line the service keeps" in caplog.text
    assert "900001" not in caplog.text
