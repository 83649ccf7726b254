"""No credential or payload follows a redirect: every source and sink against a redirecting server.

The redirecting server (127.0.0.1) answers 302 or 307 with ``Location: http://127.0.0.2:<port>/…``,
where a second server listens and counts every connection it accepts. It must accept none, and
the call must fail with one line naming both origins. ``mode = "token"`` redirects the token request
too (GreenLake's client secret, Progress MFT's client assertion); ``mode = "api"`` hands out a token
and redirects the API calls that carry it.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder import cli, registry
from forwarder.config import parse_config
from forwarder.errors import ForwarderError
from forwarder.event import AuditEvent
from forwarder.state import MemoryStore
from tests.servers.scripted import Scripted

SECRET = "s3cret-value-0123456789"
FAST = {"retries": 2, "backoff_base": 0.01, "backoff_max": 0.02, "timeout": 5}


TOKEN = b'{"access_token":"tok-abcdef0123456789","token_type":"Bearer","expires_in":3600}'


@pytest.fixture
def servers(request):
    """(redirector base URL, recorder, redirect origin) for the parametrized status and mode."""
    status, mode = request.param

    def redirect(seen):
        if mode == "api" and seen.path.split("?")[0].endswith("/token"):
            return 200, {"Content-Type": "application/json"}, TOKEN
        return status, {"Location": f"{recorder.url}{seen.path}"}, b"moved"

    with Scripted(lambda seen: (200, {}, b"ok"), host="127.0.0.2") as recorder, Scripted(redirect) as redirector:
        yield redirector.url, recorder, recorder.url


def _pem(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return f"file:{path}"


def source_table(kind, base, tmp_path, **extra):
    """A source of ``kind`` whose every URL is on ``base``."""
    common = {"name": "s", "type": kind, "http": FAST}
    tables = {
        "carbon_black_cloud": {"base_url": base, "org_key": "ORG1", "api_id": "APIID1", "api_secret": "env:REDIR_SECRET"},
        "crusoe": {"base_url": base, "organization_id": "0e8c54c8-1f4a-4f5b-8d0e-8b7f1c2a3b4c", "access_key_id": "AKID1",
                   "secret_key": "env:REDIR_SECRET"},
        "hpe_greenlake": {"base_url": base, "client_id": "client-1", "client_secret": "env:REDIR_SECRET", "workspace_id": "ws1"},
        "progress_mft": {"base_url": base, "tenant_id": "tenant-1", "key_id": "kid-1", "private_key": _pem(tmp_path)},
    }
    return {**common, **tables[kind], **extra}


def sink_table(kind, base):
    common = {"name": "k", "type": kind, "http": FAST}
    tables = {
        "splunk_hec": {"url": [base], "token": "env:REDIR_SECRET"},
        "elasticsearch": {"hosts": [base], "api_key": "env:REDIR_SECRET"},
        "logstash": {"url": base, "user": "forwarder", "password": "env:REDIR_SECRET"},
    }
    return {**common, **tables[kind]}


def assert_refused(exc, base, target, recorder):
    assert recorder.connections == 0 and recorder.seen == []
    line = str(exc)
    assert "\n" not in line and SECRET not in line
    assert f"redirect from {base} to {target}" in line, line


CASES = [(s, m) for s in (302, 307) for m in ("token", "api")]
SOURCES = [
    ("carbon_black_cloud", {}),
    ("crusoe", {}),
    ("hpe_greenlake", {}),
    ("hpe_greenlake", {"client_auth": "basic"}),
    ("progress_mft", {}),
    ("progress_mft", {"token_body": "form"}),
]


@pytest.mark.parametrize("servers", CASES, indirect=True, ids=lambda c: f"{c[0]}-{c[1]}")
@pytest.mark.parametrize("kind, extra", SOURCES, ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()))
def test_sources_never_follow_a_redirect(servers, kind, extra, tmp_path, monkeypatch):
    base, recorder, target = servers
    monkeypatch.setenv("REDIR_SECRET", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" if kind == "crusoe" else SECRET)
    cfg = parse_config({"source": [source_table(kind, base, tmp_path, **extra)]}).sources[0]
    source = registry.load("source", kind)(cfg, MemoryStore(), tmp_path)
    try:
        with pytest.raises(ForwarderError) as info:
            source.check()
    finally:
        source.close()
    assert_refused(info.value, base, target, recorder)


@pytest.mark.parametrize("servers", [(302, "api"), (307, "api")], indirect=True, ids=lambda c: str(c[0]))
@pytest.mark.parametrize("kind", ["splunk_hec", "elasticsearch", "logstash"])
@pytest.mark.parametrize("call", ["send", "check"])
def test_sinks_never_follow_a_redirect(servers, kind, call, monkeypatch):
    base, recorder, target = servers
    monkeypatch.setenv("REDIR_SECRET", SECRET)
    sink = registry.load("sink", kind)(parse_config({"sink": [sink_table(kind, base)]}).sinks[0])
    event = AuditEvent.build(vendor="crusoe", product="audit", timestamp=1767225600, tenant_id="t1", raw={"n": 1}, message="payload-marker")
    try:
        with pytest.raises(ForwarderError) as info:
            sink.send([event]) if call == "send" else sink.check()
    finally:
        sink.close()
    assert_refused(info.value, base, target, recorder)


@pytest.mark.parametrize("servers", [(307, "api")], indirect=True, ids=["307"])
def test_run_and_check_fail_with_one_line_naming_both_origins(servers, tmp_path, monkeypatch, capsys):
    base, recorder, target = servers
    monkeypatch.setenv("REDIR_SECRET", SECRET)
    config = tmp_path / "forwarder.toml"
    config.write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        f'[[source]]\nname = "cb"\ntype = "carbon_black_cloud"\nbase_url = "{base}"\norg_key = "ORG1"\n'
        'api_id = "APIID1"\napi_secret = "env:REDIR_SECRET"\n[source.http]\nretries = 0\n'
        f'[[sink]]\nname = "hec"\ntype = "splunk_hec"\nurl = ["{base}"]\ntoken = "env:REDIR_SECRET"\n[sink.http]\nretries = 0\n'
    )
    assert cli.main(["check", "-c", str(config)]) == 1
    out = capsys.readouterr()
    fails = [line for line in out.out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2 and all(target in line and base in line for line in fails), out.out
    assert cli.main(["run", "--once", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and target in err and SECRET not in err + out.out
    assert recorder.connections == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_same_origin_redirect_is_refused_too(status):
    """The choice: no redirect at all on API calls (a POST turned into a GET, or a body replayed
    at another path, is never what the caller meant), said in one line, never retried."""
    from forwarder.http import HttpClient, HttpSettings

    with Scripted(lambda seen: (status, {"Location": "/elsewhere?token=abc"}, b"")) as api:
        client = HttpClient("api", HttpSettings(retries=3, backoff_base=0.01))
        with pytest.raises(ForwarderError) as info:
            client.request("POST", f"{api.url}/v1/x", data=b"payload")
        client.close()
    assert [s.path for s in api.seen] == ["/v1/x"]
    assert str(info.value) == (
        f"api: POST {api.url}/v1/x returned HTTP {status}: redirect from {api.url} to {api.url} ({api.url}/elsewhere) "
        "refused: API calls never follow redirects, so no credential or payload leaves the configured host"
    )
