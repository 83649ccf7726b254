"""Vendor-supplied identifiers and URLs are data: never a path, never a way to move a credential.

Carbon Black's export ``job_id`` and Progress MFT's report ``id`` are checked against their
documented shape before they are stored or put in a URL; the export file is named from a hash;
an MFT download URL must be https (http only to loopback) and gets the bearer token only on the
API's own origin.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder import jsoncodec, registry
from forwarder.config import parse_config
from forwarder.errors import ForwarderError
from forwarder.sources.hpe_greenlake import DETAIL_KEY
from forwarder.state import MemoryStore
from forwarder.timeutil import now
from tests.servers.scripted import Scripted

JSON = {"Content-Type": "application/json"}
TOKEN = {"access_token": "tok-abcdef0123456789", "token_type": "Bearer", "expires_in": 3600}
FAST = {"retries": 0, "timeout": 5}


def outside(tmp_path, state):
    """Every path under ``tmp_path`` outside the state directory, with file contents."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*") if p != state and state not in p.parents}


def build(kind, table, store, work_dir):
    cfg = parse_config({"source": [{"name": "s", "type": kind, "http": FAST, **table}]}).sources[0]
    return registry.load("source", kind)(cfg, store, work_dir)


def drain(source):
    """Run a pass the way the pipeline does: every page, then its commit hooks."""
    end = now() - dt.timedelta(hours=1)
    for page in source.fetch(None, end - dt.timedelta(hours=1), end):
        for hook in page.on_committed:
            hook()


@pytest.mark.parametrize("job_id", ["../../x/victim", "/../../../../victim", "..", "4805565/../1", "12 34", -5])
def test_a_carbon_black_job_id_is_never_a_path(job_id, tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "victim.json").write_text("[]")  # what a path-built name would read, then delete on commit
    (tmp_path / "x").mkdir()

    def answer(seen):
        if seen.path.endswith("/_export"):
            return 200, JSON, jsoncodec.dumps({"job_id": job_id})
        if seen.path.endswith("/download"):
            return 200, JSON, b"[]"
        return 200, JSON, b'{"status": "COMPLETED"}'

    monkeypatch.setenv("CB_SECRET", "cb-secret-value-1")
    store = MemoryStore()
    before = outside(tmp_path, state)
    with Scripted(answer) as api:
        source = build("carbon_black_cloud", {"base_url": api.url, "org_key": "ORG1", "api_id": "ID1",
                                              "api_secret": "env:CB_SECRET", "mode": "export"}, store, state)
        with pytest.raises(ForwarderError) as info:
            drain(source)
        source.close()
    line = str(info.value)
    assert "\n" not in line and "export job id" in line and "never used as paths" in line
    assert outside(tmp_path, state) == before
    assert [(s.method, s.path) for s in api.seen] == [("POST", "/audit_log/v1/orgs/ORG1/logs/_export")]
    assert store.scratch_get("s") == {}


def test_a_carbon_black_export_file_is_named_by_a_hash(tmp_path, monkeypatch):
    def answer(seen):
        if seen.path.endswith("/_export"):
            return 200, JSON, b'{"job_id": 4805565}'
        if seen.path.endswith("/download"):
            return 200, JSON, b"[]"
        return 200, JSON, b'{"status": "COMPLETED"}'

    monkeypatch.setenv("CB_SECRET", "cb-secret-value-1")
    with Scripted(answer) as api:
        source = build("carbon_black_cloud", {"base_url": api.url, "org_key": "ORG1", "api_id": "ID1",
                                              "api_secret": "env:CB_SECRET", "mode": "export"}, MemoryStore(), tmp_path)
        pages = source.fetch(None, now() - dt.timedelta(hours=2), now() - dt.timedelta(hours=1))
        next(pages)
        files = [p.name for p in (tmp_path / "sources" / "s").iterdir()]
        source.close()
    assert "/jobs/v1/orgs/ORG1/jobs/4805565/download" in [s.path for s in api.seen]
    assert len(files) == 1 and "4805565" not in files[0]


@pytest.fixture
def mft_key(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return f"file:{path}"


def mft_api(report):
    """Token, create (answers ``report``), get (completed, same report); anything else 500."""
    def answer(seen):
        if seen.path == "/v1/oauth/token":
            return 200, JSON, jsoncodec.dumps(TOKEN)
        if seen.method == "POST" and seen.path == "/v1/reports/audit-logs":
            return 200, JSON, jsoncodec.dumps({**report, "status": 0})
        if seen.method == "GET" and seen.path.startswith("/v1/reports/audit-logs/"):
            return 200, JSON, jsoncodec.dumps({**report, "status": 1})
        if seen.method == "DELETE":
            return 204, {}, b""
        return 500, {}, b"unexpected"
    return answer


def mft(api, key, store, work_dir):
    return build("progress_mft", {"base_url": api.url, "tenant_id": "tenant-1", "key_id": "kid-1", "private_key": key}, store, work_dir)


@pytest.mark.parametrize("rid", ["..", ".", "../x", "a/../../b", " x", "x" * 200])
def test_an_mft_report_id_is_never_a_path(rid, tmp_path, mft_key):
    store = MemoryStore()
    with Scripted(mft_api({"id": rid})) as api:
        source = mft(api, mft_key, store, tmp_path)
        with pytest.raises(ForwarderError) as info:
            drain(source)
        source.close()
    line = str(info.value)
    assert "\n" not in line and "report id" in line and "never used as paths" in line
    assert [(s.method, s.path) for s in api.seen] == [("POST", "/v1/oauth/token"), ("POST", "/v1/reports/audit-logs")]
    assert store.scratch_get("s") == {}


@pytest.mark.parametrize("url, shown", [
    ("http://example.invalid/report.json", "http://example.invalid/report.json"),
    ("ftp://example.invalid/report.json", "ftp://example.invalid/report.json"),
    ("http://[::1/report.json", "(unparsable)"),
])
def test_an_mft_download_url_in_clear_to_another_host_is_refused(url, shown, tmp_path, mft_key):
    with Scripted(mft_api({"id": "r1", "url": url})) as api:
        source = mft(api, mft_key, MemoryStore(), tmp_path)
        with pytest.raises(ForwarderError) as info:
            drain(source)
        source.close()
    assert f"download url {shown} refused: only https" in str(info.value)


def test_an_mft_download_on_another_host_never_gets_the_token(tmp_path, mft_key):
    with Scripted(lambda seen: (401, {}, b"no"), host="127.0.0.2") as other:
        with Scripted(mft_api({"id": "r1", "url": f"{other.url}/report.json"})) as api:
            source = mft(api, mft_key, MemoryStore(), tmp_path)
            with pytest.raises(ForwarderError) as info:
                drain(source)
            source.close()
    assert "refused (HTTP 401" in str(info.value)
    assert len(other.seen) == 2  # the first try and the one with a fresh url: both without credentials
    assert all("Authorization" not in s.headers and "tok-" not in str(s.headers) for s in other.seen)


def test_a_greenlake_record_id_that_is_not_an_id_gets_no_detail_request(tmp_path, monkeypatch):
    def answer(seen):
        if seen.path.endswith("/token"):
            return 200, JSON, jsoncodec.dumps(TOKEN)
        return 200, JSON, b'{"id": "d", "body": {}}'

    monkeypatch.setenv("GL_SECRET", "gl-secret-value-1")
    with Scripted(answer) as api:
        source = build("hpe_greenlake", {"base_url": api.url, "client_id": "c1", "client_secret": "env:GL_SECRET",
                                         "workspace_id": "ws1", "details": True}, MemoryStore(), tmp_path)
        bad, good = source._enrich([{"id": "..", "hasDetails": True}, {"id": "8RtJaZQBITMTdBbBUxzz", "hasDetails": True}])
        source.close()
    assert "never used as paths" in bad[DETAIL_KEY]["missing"]
    assert good[DETAIL_KEY] == {"id": "d", "body": {}}
    assert [s.path for s in api.seen if not s.path.endswith("/token")] == ["/audit-log/v1/logs/8RtJaZQBITMTdBbBUxzz/detail"]


# -- properties of the two parsers of outside input this adds: ids and redirect locations ----------

from urllib.parse import unquote  # noqa: E402

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from forwarder.errors import SourceError  # noqa: E402
from forwarder.http import id_segment, redirect_error  # noqa: E402
from forwarder.sources.progress_mft import REPORT_ID  # noqa: E402


@given(st.one_of(st.text(max_size=60), st.integers(), st.none(), st.booleans(), st.floats()))
def test_an_id_becomes_one_harmless_path_segment_or_a_source_error(value):
    try:
        segment = id_segment(value, "x: id", REPORT_ID, "an id")
    except SourceError as exc:
        assert "\n" not in str(exc)
        return
    assert "/" not in segment and segment not in ("", ".", "..") and unquote(segment) == str(value)


@given(location=st.one_of(st.none(), st.text(max_size=80)), status=st.sampled_from([301, 302, 303, 307, 308]))
@example(location="http://[::1", status=302)
@example(location="//[zz]/x", status=307)
@example(location="http://a:99999/x", status=307)
def test_any_redirect_location_gives_one_line_naming_both_origins(location, status):
    line = str(redirect_error("src", "GET", "https://api.example.com/v1/x?token=abc", status, location))
    assert "\n" not in line and "redirect from https://api.example.com:443 to " in line and "token=abc" not in line
