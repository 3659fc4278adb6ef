"""Broker and store URLs in errors and logs: no password, no secret query parameter."""

from __future__ import annotations

import pytest

from vigil.core.urls import UrlError, mask_url, parse_store_url


@pytest.mark.parametrize(("url", "secret"), [
    ("mqtt://vigil-bridge:Br0kerPass@127.0.0.1:1883", "Br0kerPass"),
    ("MQTTS://vigil-bridge:Br0kerPass@broker.example.org", "Br0kerPass"),
    ("influxdb1://vigil:Infl1xPass@127.0.0.1:8086/vigil", "Infl1xPass"),
    ("influxdb2://127.0.0.1:8086/vigil?org=home&token=Tok3nInQuery", "Tok3nInQuery"),
    ("influxdb2://127.0.0.1:8086/vigil?org=home&Api_Key=K3yInQuery", "K3yInQuery"),
    ("influxdb1://u:p%40ss@127.0.0.1:8086/vigil?password=Pw1nQuery", "Pw1nQuery"),
])
def test_mask_url_hides_passwords_and_secret_parameters(url: str, secret: str) -> None:
    assert secret not in mask_url(url)
    assert "***" in mask_url(url)


def test_a_token_in_the_store_url_is_refused_without_showing_it() -> None:
    with pytest.raises(UrlError) as err:
        parse_store_url("influxdb2://127.0.0.1:8086/vigil?org=home&token=Tok3nInQuery")
    assert "unknown parameter(s) token" in str(err.value) and "Tok3nInQuery" not in str(err.value)
    assert mask_url("influxdb2://127.0.0.1:8086/vigil?org=home&ca=/etc/ca.pem") == \
        "influxdb2://127.0.0.1:8086/vigil?org=home&ca=/etc/ca.pem"
