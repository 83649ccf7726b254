"""A strict stand-in for the parts of splunkd's REST API the add-on's modular inputs use.

Splunk cannot run here; the input scripts reach "splunkd" at the ``server_uri``
of their input document, so they are tested against this server on 127.0.0.1.

Modelled:

- Auth: every request needs ``Authorization: Splunk <session key>``; anything
  else → 401 with splunkd's XML message.
- Conf files as the UCC add-on keeps them: ``GET /servicesNS/<owner>/<app>/properties/<conf>``
  (200 when the file exists, else 404), ``GET …/configs/conf-<conf>`` with
  ``name=<stanza>`` or ``search=`` filtering, answered as an Atom feed (splunkd's
  default format, the one splunklib parses) with ``eai:acl``. Encrypted fields
  read back as ``******``; their values live in the credential store.
- Credential store: ``GET …/storage/passwords?search=realm=<realm>`` → Atom
  entries ``<realm>:<user>:`` with ``clear_password``, where UCC/solnlib put a
  stanza's encrypted fields as one JSON object (user = stanza name).
- KV store: ``GET …/storage/collections/data/<coll>/<key>`` (JSON, 404 when
  absent) and ``POST …/batch_save`` (upsert by ``_key``); a collection not
  declared → 404 like splunkd. ``kv_down = True`` answers 503 (KV store not
  ready), the state splunkd is in when the KV store is disabled or starting.

Not modelled: ACL enforcement beyond the session key, owner/app namespace
inheritance, paging (``count``/``offset`` are accepted, everything fits on one
page), conf writes, any other endpoint (→ 404).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

ENCRYPTED = "******"


@dataclass
class Splunkd:
    """The stub's state; ``start()`` serves it on an ephemeral port."""

    session_key: str = "stub-session-key-0123456789"
    app: str = "TA_siem_forwarder"
    confs: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    kv: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    kv_down: bool = False
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    #: serve HTTPS (splunkd's management port always does, with its own self-signed certificate)
    tls: ssl.SSLContext | None = None

    def add_stanza(self, conf: str, stanza: str, values: dict[str, str], encrypted: tuple[str, ...] = ()) -> None:
        """Store a stanza the way UCC's REST handler does: encrypted fields go to the credential store."""
        plain = {k: (ENCRYPTED if k in encrypted and v else v) for k, v in values.items()}
        self.confs.setdefault(conf, {})[stanza] = plain
        secret = {k: values[k] for k in encrypted if values.get(k)}
        if secret:
            realm = f"__REST_CREDENTIAL__#{self.app}#configs/conf-{conf}"
            self.passwords[(realm, stanza)] = json.dumps(secret)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Splunkd":
        stub = self

        class Handler(_Handler):
            splunkd = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def uri(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Splunkd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _feed(uri: str, path: str, entries: list[tuple[str, dict[str, str]]], app: str) -> bytes:
    def entry(name: str, content: dict[str, str]) -> str:
        keys = "".join(f'<s:key name="{escape(k)}">{escape(str(v))}</s:key>' for k, v in content.items())
        acl = f'<s:key name="eai:acl"><s:dict><s:key name="app">{escape(app)}</s:key><s:key name="owner">nobody</s:key><s:key name="sharing">app</s:key></s:dict></s:key>'
        href = f"{path}/{escape(name)}"
        return (
            f"<entry><title>{escape(name)}</title><id>{uri}{href}</id><updated>2026-01-01T00:00:00+00:00</updated>"
            f'<link href="{href}" rel="alternate"/><author><name>nobody</name></author>'
            f'<content type="text/xml"><s:dict>{keys}{acl}</s:dict></content></entry>'
        )

    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        f"<title>{escape(path)}</title><id>{uri}{path}</id><updated>2026-01-01T00:00:00+00:00</updated>"
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
        "<opensearch:itemsPerPage>30</opensearch:itemsPerPage><opensearch:startIndex>0</opensearch:startIndex>"
        + "".join(entry(n, c) for n, c in entries)
        + "</feed>"
    )
    return body.encode()


def _message(text: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><response><messages><msg type="ERROR">{escape(text)}</msg></messages></response>'.encode()


_NS = re.compile(r"^/servicesNS/(?P<owner>[^/]+)/(?P<app>[^/]+)/(?P<rest>.+?)/?$")


class _Handler(BaseHTTPRequestHandler):
    splunkd: Splunkd

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/xml") -> None:
        self.splunkd.requests.append((self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        stub = self.splunkd
        if self.headers.get("Authorization") != f"Splunk {stub.session_key}":
            self._send(401, _message("call not properly authenticated"))
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "POST" and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            query.update({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        m = _NS.match(parts.path)
        if not m:
            self._send(404, _message(f"Not Found: {parts.path}"))
            return
        rest = [unquote(p) for p in m["rest"].split("/")]
        path = parts.path.rstrip("/")
        if rest[0] == "properties" and len(rest) == 2 and self.command == "GET":
            found = rest[1] in stub.confs
            self._send(200 if found else 404, _feed(stub.uri, path, [], stub.app) if found else _message(f"no conf {rest[1]}"))
        elif rest[0] == "configs" and len(rest) in (2, 3) and rest[1].startswith("conf-") and self.command == "GET":
            stanzas = stub.confs.get(rest[1][5:], {})
            wanted = rest[2] if len(rest) == 3 else query.get("name")
            entries = [(n, c) for n, c in stanzas.items() if wanted is None or n == wanted]
            if wanted is not None and not entries:
                self._send(404, _message(f"Could not find object id={wanted}"))
                return
            self._send(200, _feed(stub.uri, path, entries, stub.app))
        elif rest[:2] == ["storage", "passwords"] and self.command == "GET":
            realm = (query.get("search") or "").removeprefix("realm=")
            entries = [
                (f"{r}:{user}:", {"realm": r, "username": user, "clear_password": pw, "encr_password": "$7$stub", "password": "********"})
                for (r, user), pw in stub.passwords.items()
                if not realm or r == realm
            ]
            self._send(200, _feed(stub.uri, path, entries, stub.app))
        elif rest[:3] == ["storage", "collections", "data"] and len(rest) >= 4:
            self._kv(rest[3], rest[4:], body)
        else:
            self._send(404, _message(f"Not Found: {parts.path}"))

    def _kv(self, collection: str, rest: list[str], body: bytes) -> None:
        stub = self.splunkd
        if stub.kv_down:
            self._send(503, json.dumps({"messages": [{"type": "ERROR", "text": "KV Store is initializing"}]}).encode(), "application/json")
            return
        docs = stub.kv.get(collection)
        if docs is None:
            self._send(404, json.dumps({"messages": [{"type": "ERROR", "text": f"Collection: {collection} does not exist"}]}).encode(), "application/json")
            return
        if self.command == "GET" and len(rest) == 1:
            doc = docs.get(rest[0])
            if doc is None:
                self._send(404, json.dumps({"messages": [{"type": "ERROR", "text": f"Could not find object id={rest[0]}"}]}).encode(), "application/json")
            else:
                self._send(200, json.dumps(doc).encode(), "application/json")
        elif self.command == "POST" and rest == ["batch_save"]:
            try:
                items = json.loads(body)
                assert isinstance(items, list) and all(isinstance(d, dict) and isinstance(d.get("_key"), str) for d in items)
            except (ValueError, AssertionError):
                self._send(400, json.dumps({"messages": [{"type": "ERROR", "text": "Request exceeds API limits or is malformed"}]}).encode(), "application/json")
                return
            for item in items:
                docs[item["_key"]] = dict(item)
            self._send(200, json.dumps([d["_key"] for d in items]).encode(), "application/json")
        else:
            self._send(405, json.dumps({"messages": [{"type": "ERROR", "text": "Method not allowed"}]}).encode(), "application/json")

    do_GET = _route
    do_POST = _route
    do_DELETE = _route
