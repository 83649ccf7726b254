"""`siem-forwarder setup kibana` against the strict Kibana import stub (tests/servers/kibana.py)."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from forwarder import cli
from forwarder.errors import AuthError, HttpError, SetupError
from forwarder.kibana import encode, load_objects, to_ndjson
from forwarder.kibana.setup import MIN_KIBANA, kibana_auth, results, setup_kibana
from forwarder.secrets import Secret
from tests.servers.kibana import KibanaServer

API_KEY = base64.b64encode(b"key-id:key-secret-value").decode()
PASSWORD = "kibana-admin-pw-123"
SHIPPED = {(o["type"], o["id"]) for o in load_objects()}


def server(**kw):
    kw.setdefault("users", {"elastic": PASSWORD})
    kw.setdefault("api_keys", (API_KEY,))
    return KibanaServer(**kw)


def key_auth():
    return kibana_auth(Secret(API_KEY), None, None)


def test_first_import_creates_every_object(monkeypatch):
    with server() as kb:
        version, outcome = setup_kibana(kb.url, key_auth())
        stored = kb.stored()
        (call,) = kb.imports
    assert version == "8.15.3"
    assert [(r.ok, r.detail) for r in outcome] == [(True, "created")] * len(SHIPPED)
    assert set(stored) == SHIPPED
    assert call["query"] == {"overwrite": ["true"]}
    overview = stored[("dashboard", "forwarder-overview")]
    assert overview["attributes"]["panelsJSON"][0]["type"] == "lens"  # arrived as JSON text, decoded by the stub


def test_running_it_again_replaces_instead_of_copying():
    with server() as kb:
        setup_kibana(kb.url, key_auth())
        _, second = setup_kibana(kb.url, key_auth())
        assert {r.detail for r in second} == {"replaced"} and all(r.ok for r in second)
        assert set(kb.stored()) == SHIPPED


def test_basic_auth_and_a_space():
    with server(spaces=("default", "soc")) as kb:
        setup_kibana(kb.url, kibana_auth(None, "elastic", Secret(PASSWORD)), space="soc")
        assert set(kb.stored("soc")) == SHIPPED and kb.stored() == {}


def test_unknown_space_is_an_error_line():
    with server() as kb:
        with pytest.raises(HttpError) as err:
            setup_kibana(kb.url, key_auth(), space="nope")
    assert err.value.status == 404 and "/s/nope/" in str(err.value)


def test_wrong_credentials_fail_before_anything_is_sent():
    with server() as kb:
        with pytest.raises(AuthError):
            setup_kibana(kb.url, kibana_auth(None, "elastic", Secret("wrong-password")))
        assert kb.imports == []


@pytest.mark.parametrize("version", [".".join(map(str, MIN_KIBANA)), "8.19.0", "9.1.4"])
def test_the_objects_import_into_every_supported_kibana(version):
    """The objects' migration versions are no newer than the oldest Kibana setup accepts."""
    with server(version=version) as kb:
        _, outcome = setup_kibana(kb.url, key_auth())
    assert [r.line() for r in outcome if not r.ok] == []


def test_an_older_kibana_is_refused_with_one_clear_line():
    with server(version="8.8.2") as kb:
        with pytest.raises(SetupError, match="runs Kibana 8.8.2; the dashboards need Kibana 8.9.0 or later"):
            setup_kibana(kb.url, key_auth())
        assert kb.imports == []


def test_each_failed_object_is_reported_and_the_rest_imported():
    with server(forbidden_types=("tag",)) as kb:
        _, outcome = setup_kibana(kb.url, key_auth())
        stored = kb.stored()
    failed = [r for r in outcome if not r.ok]
    assert [(r.type, r.id) for r in failed] == [("tag", "forwarder-tag")]
    assert "Unable to bulk_create tag" in failed[0].detail and failed[0].line().startswith("FAIL tag forwarder-tag")
    assert set(stored) == SHIPPED - {("tag", "forwarder-tag")}


def test_results_describe_every_error_kind():
    objects = load_objects()[:4]
    answer = {"success": False, "successCount": 0, "errors": [
        {"type": objects[0]["type"], "id": objects[0]["id"], "error": {"type": "conflict"}},
        {"type": objects[1]["type"], "id": objects[1]["id"],
         "error": {"type": "missing_references", "references": [{"type": "index-pattern", "id": "forwarder-logs"}]}},
        {"type": objects[2]["type"], "id": objects[2]["id"], "error": {"type": "unsupported_type"}},
    ]}
    details = [r.detail for r in results(objects, answer)]
    assert details == ["an object with this id exists and was not replaced",
                       "missing references: index-pattern/forwarder-logs",
                       "this Kibana does not know the object type",
                       "not mentioned in Kibana's answer"]
    with pytest.raises(SetupError):
        results(objects, {"statusCode": 200})


def test_cli_prints_one_line_per_object_and_never_the_key(monkeypatch, capsys):
    monkeypatch.setenv("KIBANA_KEY", API_KEY)
    with server() as kb:
        code = cli.main(["setup", "kibana", "--url", kb.url, "--api-key", "env:KIBANA_KEY"])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert code == 0
    assert lines[0].startswith("Kibana 8.15.3 at ") and len(lines) == len(SHIPPED) + 2
    assert lines[-1] == f"{len(SHIPPED)} of {len(SHIPPED)} saved objects imported"
    assert API_KEY not in out.out + out.err


def test_cli_exit_code_says_something_failed(monkeypatch, capsys):
    monkeypatch.setenv("KIBANA_PW", PASSWORD)
    with server(forbidden_types=("tag",)) as kb:
        code = cli.main(["setup", "kibana", "--url", kb.url, "--user", "elastic", "--password", "env:KIBANA_PW"])
    out = capsys.readouterr().out
    assert code == 1 and "1 failed" in out and PASSWORD not in out


@pytest.mark.parametrize("argv, message", [
    (["--url", "kibana:5601", "--api-key", "env:X"], "--url: must be an http:// or https:// URL"),
    (["--url", "https://k:5601", "--api-key", "env:X", "--user", "u"], "either --api-key or --user"),
    (["--url", "https://k:5601", "--user", "u"], "--password: --user and --password go together"),
    (["--url", "https://k:5601", "--api-key", "literal-key"], "must be a secret reference"),
])
def test_cli_usage_errors_are_one_line(capsys, argv, message):
    assert cli.main(["setup", "kibana", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "literal-key" not in err


def test_ndjson_file_for_manual_import(tmp_path, capsys):
    target = tmp_path / "objects.ndjson"
    assert cli.main(["setup", "kibana", "--ndjson", str(target)]) == 0
    assert target.read_bytes() == to_ndjson()
    assert f"wrote {len(SHIPPED)} saved objects" in capsys.readouterr().out


# -- the stub is as strict as Kibana, so the passes above mean something ------------------------

def post(kb, body=None, *, files=None, headers=None, params="overwrite=true", path="/api/saved_objects/_import"):
    headers = {"kbn-xsrf": "true", "Authorization": f"ApiKey {API_KEY}", **(headers or {})}
    if files is None and body is None:
        files = {"file": ("x.ndjson", to_ndjson(), "application/ndjson")}
    return requests.post(f"{kb.url}{path}?{params}", data=body, files=files, headers=headers, timeout=10)


def test_stub_requires_the_xsrf_header_and_multipart():
    with server() as kb:
        resp = post(kb, headers={"kbn-xsrf": None})
        assert resp.status_code == 400 and "kbn-xsrf" in resp.json()["message"]
        resp = post(kb, body=to_ndjson(), headers={"Content-Type": "application/ndjson"})
        assert resp.status_code == 415
        resp = post(kb, files={"upload": ("x.ndjson", b"{}", "application/ndjson")})
        assert resp.status_code == 400 and "body.file" in resp.json()["message"]
        resp = post(kb, files={"file": ("x.json", to_ndjson(), "application/json")})
        assert resp.status_code == 400 and resp.json()["message"] == "Invalid file extension .json"
        assert kb.stored() == {}


def test_stub_rejects_conflicting_flags():
    with server() as kb:
        resp = post(kb, params="overwrite=true&createNewCopies=true")
        assert resp.status_code == 400 and resp.json()["message"] == "cannot use [overwrite] with [createNewCopies]"


def test_stub_reports_conflicts_missing_references_and_unencoded_attributes():
    dashboard = next(o for o in load_objects() if o["type"] == "dashboard")
    with server() as kb:
        alone = post(kb, files={"file": ("d.ndjson", json.dumps(encode(dashboard)).encode(), "application/ndjson")}).json()
        assert alone["success"] is False and alone["errors"][0]["error"]["type"] == "missing_references"
        assert {"type": "index-pattern", "id": "forwarder-logs"} in alone["errors"][0]["error"]["references"]
        raw = post(kb, files={"file": ("d.ndjson", to_ndjson(load_objects()[:2]) + json.dumps(dashboard).encode(),
                                       "application/ndjson")}).json()
        assert raw["errors"][0]["error"]["type"] == "unknown" and "panelsJSON" in raw["errors"][0]["error"]["message"]
        again = post(kb, params="", files={"file": ("d.ndjson", to_ndjson(load_objects()[:2]), "application/ndjson")}).json()
        assert {e["error"]["type"] for e in again["errors"]} == {"conflict"} and "successResults" not in again
