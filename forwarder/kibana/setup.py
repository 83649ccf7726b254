"""``siem-forwarder setup kibana``: import the shipped data view, tag and dashboards.

One ``POST /api/saved_objects/_import?overwrite=true`` (multipart field
``file``, header ``kbn-xsrf``) with every object; ids are fixed, so running it
again replaces the objects instead of adding copies. Kibana answers 200 even
when objects fail, so each object's outcome is read from the answer and
reported on its own line. Before importing, ``GET /api/status`` proves the URL
and credentials and refuses a Kibana older than the objects' migration
versions (Kibana cannot import objects from a newer version).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from forwarder.auth.api_key import ApiKeyAuth
from forwarder.auth.basic import BasicAuth
from forwarder.errors import ConfigError, SetupError
from forwarder.http import HttpClient, HttpSettings, response_json, safe_url
from forwarder.kibana import load_objects, to_ndjson
from forwarder.secrets import Secret, api_key_credentials, resolve

MIN_KIBANA = (8, 9, 0)
IMPORT_FILE_NAME = "siem-forwarder.ndjson"


@dataclass
class ObjectResult:
    """What Kibana did with one shipped object."""

    type: str
    id: str
    title: str
    ok: bool
    detail: str

    def line(self) -> str:
        """One report line."""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.type} {self.id} ({self.title}): {self.detail}"


def kibana_auth(api_key: Secret | None, user: str | None, password: Secret | None) -> requests.auth.AuthBase:
    """``Authorization: ApiKey <encoded key>`` (an ``id:key`` is encoded) or HTTP Basic; every wire form is redacted."""
    if api_key is not None:
        return ApiKeyAuth("Authorization", Secret(f"ApiKey {api_key_credentials(api_key).reveal()}"))
    if user is not None and password is not None:
        return BasicAuth(user, password)
    raise SetupError("kibana: give --api-key, or --user with --password")


def setup_kibana(url: str, auth: requests.auth.AuthBase, *, space: str | None = None,
                 http: HttpSettings | None = None) -> tuple[str, list[ObjectResult]]:
    """Import every shipped object; return Kibana's version and one result per object."""
    base = url.rstrip("/")
    client = HttpClient("kibana", http, auth=auth)
    try:
        version = _check_version(client, base)
        prefix = f"/s/{quote(space, safe='')}" if space and space != "default" else ""
        resp = client.request(
            "POST",
            f"{base}{prefix}/api/saved_objects/_import",
            params={"overwrite": "true"},
            headers={"kbn-xsrf": "siem-forwarder"},
            files={"file": (IMPORT_FILE_NAME, to_ndjson(), "application/ndjson")},
        )
        answer = response_json(resp, "kibana")
    finally:
        client.close()
    return version, results(load_objects(), answer)


def _check_version(client: HttpClient, base: str) -> str:
    status = response_json(client.request("GET", f"{base}/api/status"), "kibana")
    number = str(((status or {}).get("version") or {}).get("number") or "")
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", number)
    if not found:
        raise SetupError(f"kibana: {safe_url(base)}/api/status does not look like Kibana (no version number)")
    if tuple(map(int, found.groups())) < MIN_KIBANA:
        raise SetupError(f"kibana: {safe_url(base)} runs Kibana {number}; the dashboards need Kibana "
                         f"{'.'.join(map(str, MIN_KIBANA))} or later")
    return number


def results(objects: list[dict[str, Any]], answer: Any) -> list[ObjectResult]:
    """Match Kibana's import answer to the objects sent, in the order sent."""
    if not isinstance(answer, dict) or "successCount" not in answer:
        raise SetupError("kibana: the import answer is not a saved-objects import result")
    done = {(r.get("type"), r.get("id")): r for r in answer.get("successResults") or []}
    failed: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for err in answer.get("errors") or []:
        failed.setdefault((err.get("type"), err.get("id")), []).append(err.get("error") or {})
    out = []
    for obj in objects:
        key = (obj["type"], obj["id"])
        title = obj["attributes"].get("title") or obj["attributes"].get("name") or ""
        if key in failed:
            out.append(ObjectResult(*key, title, False, "; ".join(_describe(e) for e in failed[key])))
        elif key in done:
            out.append(ObjectResult(*key, title, True, "replaced" if done[key].get("overwrite") else "created"))
        else:
            out.append(ObjectResult(*key, title, False, "not mentioned in Kibana's answer"))
    return out


def _describe(error: dict[str, Any]) -> str:
    kind = error.get("type") or "unknown"
    if kind == "missing_references":
        refs = ", ".join(f"{r.get('type')}/{r.get('id')}" for r in error.get("references") or [])
        return f"missing references: {refs}"
    if kind == "conflict":
        return "an object with this id exists and was not replaced"
    if kind == "unsupported_type":
        return "this Kibana does not know the object type"
    return f"{kind}: {error.get('message') or 'no details'}"


# -- command line ------------------------------------------------------------------------------

def add_command(setup_sub: Any) -> None:
    """Add ``setup kibana`` to the ``setup`` subcommands."""
    p = setup_sub.add_parser("kibana", help="import the data view and dashboards into Kibana (idempotent)")
    p.add_argument("--url", help="Kibana URL, e.g. https://kibana.example.internal:5601")
    p.add_argument("--api-key", help="Kibana/Elasticsearch API key (encoded form) as env:NAME or file:PATH")
    p.add_argument("--user", help="user name for HTTP Basic auth (with --password)")
    p.add_argument("--password", help="password as env:NAME or file:PATH")
    p.add_argument("--space", help="Kibana space id (default: the default space)")
    p.add_argument("--ca-bundle", help="PEM file of CA certificates to trust for Kibana's TLS certificate")
    p.add_argument("--insecure", action="store_true", help="do not verify Kibana's TLS certificate")
    p.add_argument("--ndjson", type=Path, help="only write the import file here (for Stack Management → Saved objects → Import)")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run ``setup kibana``: 0 when every object was imported, 1 otherwise."""
    from forwarder.logs import setup_logging

    setup_logging("warning")
    if args.ndjson is not None:
        data = to_ndjson()
        args.ndjson.write_bytes(data)
        print(f"wrote {len(load_objects())} saved objects ({len(data)} bytes) to {args.ndjson}")
        return 0
    if not args.url:
        raise ConfigError("--url", "is required (or use --ndjson to write the import file)")
    if urlsplit(args.url).scheme not in ("http", "https") or not urlsplit(args.url).hostname:
        raise ConfigError("--url", "must be an http:// or https:// URL of Kibana")
    if args.api_key and (args.user or args.password):
        raise ConfigError("--api-key", "give either --api-key or --user with --password, not both")
    if bool(args.user) != bool(args.password):
        raise ConfigError("--password" if args.user else "--user", "--user and --password go together")
    auth = kibana_auth(
        resolve(args.api_key, "--api-key") if args.api_key else None,
        args.user,
        resolve(args.password, "--password") if args.password else None,
    )
    http = HttpSettings(verify=not args.insecure, ca_bundle=args.ca_bundle)
    version, outcome = setup_kibana(args.url, auth, space=args.space, http=http)
    print(f"Kibana {version} at {safe_url(args.url)}, space {args.space or 'default'}:")
    for result in outcome:
        print(result.line())
    failed = sum(not r.ok for r in outcome)
    print(f"{len(outcome) - failed} of {len(outcome)} saved objects imported" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
