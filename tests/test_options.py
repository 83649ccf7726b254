import pytest

from forwarder.errors import ConfigError
from forwarder.options import Option, convert


@pytest.mark.parametrize("value", ["https://api.example.com", "https://api.example.com/v1/", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"])
def test_secure_url_accepts_https_and_loopback_http(value):
    assert convert(value, Option("secure_url"), "k") == value


@pytest.mark.parametrize("value, words", [
    ("http://api.example.com", "must use https://"),
    ("api.example.com", "must be an https:// URL"),
    ("https://user:pw@api.example.com", "must not contain credentials"),
    ("https://api.example.com/?token=x", "must not carry a query"),
])
def test_secure_url_refuses_clear_text_and_oddities(value, words):
    with pytest.raises(ConfigError) as info:
        convert(value, Option("secure_url"), 'source "x".base_url')
    assert words in str(info.value) and "pw@" not in str(info.value)


def test_plain_url_allows_http_to_your_own_hosts():
    assert convert("http://logstash.internal:8080", Option("url"), "k") == "http://logstash.internal:8080"
