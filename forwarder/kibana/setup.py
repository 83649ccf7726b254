"""``siem-forwarder setup kibana``: import the shipped data view, tag and dashboards.

One ``POST /api/saved_objects/_import?overwrite=true`` (multipart field
``file``, header ``kbn-xsrf``) with every object; ids are fixed, so running it
again replaces the objects instead of adding copies. Kibana answers 200 even
when objects fail, so each object's outcome is read from the answer and
reported on its own line. Before importing, ``GET /api/status`` proves the URL
and credentials and refuses a Kibana older than the objects' migration
versions (Kibana cannot import objects from a newer version).

Where Kibana is and how to log in comes from the ``[kibana]`` table of the
config file every other command reads (``--config``, or ``forwarder.toml`` when
it exists; secrets as ``env:``/``file:``, TLS and proxy in ``[kibana.http]``);
the command-line flags override it, the credentials as a whole.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    raise SetupError("kibana: give --api-key, or --user with --password (or api_key / user and password in [kibana])")


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
    p.add_argument("--config", "-c", help="TOML config file whose [kibana] table gives the defaults (default: forwarder.toml if it exists)")
    p.add_argument("--url", help="Kibana URL, e.g. https://kibana.example.internal:5601")
    p.add_argument("--api-key", help="Kibana/Elasticsearch API key (encoded form) as env:NAME or file:PATH")
    p.add_argument("--user", help="user name for HTTP Basic auth (with --password)")
    p.add_argument("--password", help="password as env:NAME or file:PATH")
    p.add_argument("--space", help="Kibana space id (default: the default space)")
    p.add_argument("--ca-bundle", help="PEM file of CA certificates to trust for Kibana's TLS certificate")
    p.add_argument("--insecure", action="store_true", help="do not verify Kibana's TLS certificate")
    p.add_argument("--ndjson", type=Path, help="only write the import file here (for Stack Management → Saved objects → Import)")
    p.set_defaults(func=command)


def configured(path: str | None) -> dict[str, Any]:
    """The validated ``[kibana]`` table of ``path``, or of ``forwarder.toml`` when no path is given and it exists."""
    from forwarder.config import load_config

    if path is None:
        if not Path("forwarder.toml").is_file():
            return {}
        path = "forwarder.toml"
    return load_config(path).kibana


def command(args: argparse.Namespace) -> int:
    """Run ``setup kibana``: 0 when every object was imported, 1 otherwise."""
    from forwarder.logs import setup_logging

    setup_logging("warning")
    if args.ndjson is not None:
        data = to_ndjson()
        args.ndjson.write_bytes(data)
        print(f"wrote {len(load_objects())} saved objects ({len(data)} bytes) to {args.ndjson}")
        return 0
    conf = configured(args.config)
    url = args.url or conf.get("url")
    if not url:
        raise ConfigError("--url", "is required (or url in the config file's [kibana] table, or --ndjson to write the import file)")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError("--url", "must be an http:// or https:// URL of Kibana")
    if args.api_key or args.user or args.password:  # the flags replace the file's credentials as a whole
        if args.api_key and (args.user or args.password):
            raise ConfigError("--api-key", "give either --api-key or --user with --password, not both")
        if bool(args.user) != bool(args.password):
            raise ConfigError("--password" if args.user else "--user", "--user and --password go together")
        api_key = resolve(args.api_key, "--api-key") if args.api_key else None
        user, password = args.user, resolve(args.password, "--password") if args.password else None
    else:
        api_key, user, password = conf.get("api_key"), conf.get("user"), conf.get("password")
        if api_key is not None and (user or password is not None):
            raise ConfigError("kibana.api_key", "give either api_key or user with password, not both")
        if (user is None) != (password is None):
            raise ConfigError("kibana.password" if user else "kibana.user", "user and password go together")
    http = conf.get("http") or HttpSettings()
    if args.insecure or args.ca_bundle:
        http = dataclasses.replace(http, verify=http.verify and not args.insecure, ca_bundle=args.ca_bundle or http.ca_bundle)
    space = args.space or conf.get("space")
    version, outcome = setup_kibana(url, kibana_auth(api_key, user, password), space=space, http=http)
    print(f"Kibana {version} at {safe_url(url)}, space {space or 'default'}:")
    for result in outcome:
        print(result.line())
    failed = sum(not r.ok for r in outcome)
    print(f"{len(outcome) - failed} of {len(outcome)} saved objects imported" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
