"""A strict stand-in for Kibana's saved-objects import API on 127.0.0.1.

What it models (facts: ``shared/targets/kibana.md``):

- ``GET /api/status`` (the version, ``build_flavor`` and overall level) behind the same auth;
- auth: ``Authorization: Basic`` (``users``) or ``ApiKey <encoded>`` (``api_keys``);
  missing or wrong → ``401``;
- ``POST /api/saved_objects/_import`` and ``/s/<space>/api/saved_objects/_import``:
  unknown space → ``404``; no ``kbn-xsrf`` header → ``400``; query keys other
  than ``overwrite``, ``createNewCopies``, ``compatibilityMode`` → ``400``, and
  ``createNewCopies`` with either of the others → ``400`` with Kibana's message;
  a body that is not ``multipart/form-data`` → ``415``; a malformed multipart
  body, no ``file`` field, or a file name not ending in ``.ndjson`` → ``400``;
  over ``max_payload_bytes`` → ``413``; a line that is not JSON → ``400``;
  more than ``max_objects`` objects → ``400``;
- the NDJSON: blank lines and the export-details line (``exportedCount``) are
  skipped; per object (all reported, ``200`` regardless): unknown ``type`` →
  ``unsupported_type``; no id or no attributes object, a JSON-string attribute
  (``panelsJSON``, ``optionsJSON``, ``searchSourceJSON``) that is not a string
  of valid JSON, or a ``coreMigrationVersion``/``typeMigrationVersion`` newer
  than this Kibana knows → ``unknown``; a reference to an object that is
  neither in the file nor in the space → ``missing_references`` (listing
  them); an id that exists in the space without ``overwrite=true`` →
  ``conflict``; a type in ``forbidden_types`` (the user may not write it) →
  ``unknown`` with status 403. Objects with an error are not created, the rest are;
  ``successResults``/``errors`` are omitted when empty, as Kibana does.
- Objects are kept per space in ``spaces[space][(type, id)]``, stored with
  their JSON-string attributes decoded (``stored`` gives them back).

Not modelled: ``createNewCopies``/``compatibilityMode`` semantics (accepted but
ignored), ``_resolve_import_errors``, ambiguous conflicts across spaces, the
attribute schemas and migrations of each type beyond the checks above,
privileges finer than "authenticated", hidden types, and saved-object
namespaces other than spaces.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import threading
from typing import Any

from forwarder.simulators.base import Request, Response, Simulator

KNOWN_TYPES = ("index-pattern", "dashboard", "tag", "search", "lens", "visualization", "map", "config")
_JSON_STRING_PATHS = (("panelsJSON",), ("optionsJSON",), ("kibanaSavedObjectMeta", "searchSourceJSON"))
_ICONS = {"dashboard": "dashboardApp", "index-pattern": "indexPatternApp", "tag": "tag", "search": "discoverApp"}
_QUERY_KEYS = {"overwrite", "createNewCopies", "compatibilityMode"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _error(status: int, error: str, message: str) -> Response:
    return Response.json({"statusCode": status, "error": error, "message": message}, status)


class KibanaServer(Simulator):
    """Kibana's status and saved-objects import endpoints, with objects kept per space."""

    VENDOR = "kibana"

    def __init__(
        self,
        *,
        version: str = "8.15.3",
        users: dict[str, str] | None = None,
        api_keys: tuple[str, ...] = (),
        spaces: tuple[str, ...] = ("default",),
        preexisting: dict[str, list[dict[str, Any]]] | None = None,
        max_payload_bytes: int = 26_214_400,
        max_objects: int = 10_000,
        forbidden_types: tuple[str, ...] = (),
        port: int = 0,
    ) -> None:
        self.version = version
        self.forbidden_types = set(forbidden_types)
        self.users = dict(users or {})
        self.api_keys = set(api_keys)
        self.spaces: dict[str, dict[tuple[str, str], dict[str, Any]]] = {s: {} for s in spaces}
        for space, objects in (preexisting or {}).items():
            for obj in objects:
                self.spaces[space][(obj["type"], obj["id"])] = obj
        self.max_payload_bytes = max_payload_bytes
        self.max_objects = max_objects
        self.imports: list[dict[str, Any]] = []  # every import request: space, query, file name, response
        self._lock = threading.Lock()
        super().__init__(port=port)

    def setup(self) -> None:
        """Status and import, in the default space and in /s/<space>."""
        self.route("GET", r"/api/status", self._status)
        self.route("POST", r"/api/saved_objects/_import", self._import)
        self.route("POST", r"/s/(?P<space>[^/]+)/api/saved_objects/_import", self._import)

    def stored(self, space: str = "default") -> dict[tuple[str, str], dict[str, Any]]:
        """The objects of a space."""
        with self._lock:
            return dict(self.spaces[space])

    # -- the latest migration version this Kibana knows for a type -------------------------------
    def latest_migration(self, obj_type: str) -> tuple[int, ...]:
        """An approximation of the newest migration a Kibana of ``version`` knows for a type.

        Dashboards gain one with every minor up to 8.9 (their by-value Lens panels
        migrate with Lens) and use model versions (``10.x``) later; data views and
        tags last migrated in 8.0.
        """
        version = _version(self.version)
        if obj_type == "dashboard":
            return min(version[:2], (8, 9)) + (0,) if version < (8, 10) else (10, 2, 0)
        return {"index-pattern": (8, 0, 0), "tag": (8, 0, 0)}.get(obj_type, version)

    # -- routes ------------------------------------------------------------------------------------
    def _authenticated(self, request: Request) -> bool:
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme == "ApiKey":
            return value in self.api_keys
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except ValueError:
                return False
            return user in self.users and self.users[user] == password
        return False

    def _unauthorized(self) -> Response:
        return _error(401, "Unauthorized", "[security_exception]: missing authentication credentials for REST request")

    def _status(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        return Response.json({"name": "kibana-test", "version": {"number": self.version, "build_flavor": "traditional"},
                              "status": {"overall": {"level": "available"}}})

    def _import(self, request: Request, space: str = "default") -> Response:
        resp = self._do_import(request, space)
        with self._lock:
            self.imports.append({"space": space, "query": request.query, "status": resp.status, "body": resp.body})
        return resp

    def _do_import(self, request: Request, space: str) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        if space not in self.spaces:
            return _error(404, "Not Found", f"Saved object [space/{space}] not found")
        if request.header("kbn-xsrf") is None:
            return _error(400, "Bad Request", "Request must contain a kbn-xsrf header.")
        unknown = sorted(set(request.query) - _QUERY_KEYS)
        if unknown:
            return _error(400, "Bad Request", f"[request query.{unknown[0]}]: definition for this key is missing")
        flags = {k: request.arg(k, "false") == "true" for k in _QUERY_KEYS}
        if flags["createNewCopies"] and flags["overwrite"]:
            return _error(400, "Bad Request", "cannot use [overwrite] with [createNewCopies]")
        if flags["createNewCopies"] and flags["compatibilityMode"]:
            return _error(400, "Bad Request", "cannot use [createNewCopies] with [compatibilityMode]")
        content_type = request.header("content-type") or ""
        if not content_type.lower().startswith("multipart/form-data"):
            return _error(415, "Unsupported Media Type", "Unsupported Media Type")
        if len(request.body) > self.max_payload_bytes:
            return _error(413, "Request Entity Too Large",
                          f"Payload content length greater than maximum allowed: {self.max_payload_bytes}")
        upload = _file_field(content_type, request.body)
        if isinstance(upload, Response):
            return upload
        filename, data = upload
        if not filename.endswith(".ndjson"):
            ext = filename[filename.rfind("."):] if "." in filename else ""
            return _error(400, "Bad Request", f"Invalid file extension {ext}")
        objects = []
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                return _error(400, "Bad Request", f"line {number}: {exc}")
            if isinstance(obj, dict) and "exportedCount" in obj:
                continue
            objects.append(obj)
        if len(objects) > self.max_objects:
            return _error(400, "Bad Request", f"Can't import more than {self.max_objects} objects")
        return Response.json(self._apply(space, objects, flags["overwrite"]))

    def _apply(self, space: str, objects: list[Any], overwrite: bool) -> dict[str, Any]:
        with self._lock:
            store = self.spaces[space]
            in_file = {(o.get("type"), o.get("id")) for o in objects if isinstance(o, dict)}
            successes: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for obj in objects:
                problem = self._check(obj, store, in_file, overwrite)
                meta = _meta_of(obj)
                if problem is not None:
                    errors.append({"id": obj.get("id") if isinstance(obj, dict) else None,
                                   "type": obj.get("type") if isinstance(obj, dict) else None,
                                   "title": meta["title"], "meta": meta, "error": problem})
                    continue
                key = (obj["type"], obj["id"])
                result = {"type": obj["type"], "id": obj["id"], "meta": meta}
                if key in store:
                    result["overwrite"] = True
                store[key] = _decoded(obj)
                successes.append(result)
        body: dict[str, Any] = {"success": not errors, "successCount": len(successes)}
        if successes:
            body["successResults"] = successes
        if errors:
            body["errors"] = errors
        return body

    def _check(self, obj: Any, store: dict[tuple[str, str], Any], in_file: set[Any], overwrite: bool) -> dict[str, Any] | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            return {"type": "unknown", "message": "object has no id", "statusCode": 400}
        obj_type = obj.get("type")
        if obj_type not in KNOWN_TYPES:
            return {"type": "unsupported_type"}
        attributes = obj.get("attributes")
        if not isinstance(attributes, dict):
            return {"type": "unknown", "message": "[attributes]: expected an object", "statusCode": 400}
        for field, text in (("coreMigrationVersion", obj.get("coreMigrationVersion")),
                            ("typeMigrationVersion", obj.get("typeMigrationVersion"))):
            if text is None:
                continue
            latest = _version(self.version) if field == "coreMigrationVersion" else self.latest_migration(obj_type)
            if _version(text) > latest:
                return {"type": "unknown", "statusCode": 400, "message": (
                    f'Document "{obj["id"]}" belongs to a more recent version of Kibana [{text}] when the last '
                    f"known version is [{'.'.join(map(str, latest))}].")}
        for path in _JSON_STRING_PATHS:
            value: Any = attributes
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue
            name = ".".join(path)
            if not isinstance(value, str):
                return {"type": "unknown", "statusCode": 400,
                        "message": f"[attributes.{name}]: expected value of type [string] but got [{type(value).__name__}]"}
            try:
                json.loads(value)
            except ValueError:
                return {"type": "unknown", "statusCode": 400, "message": f"attributes.{name} is not valid JSON"}
        missing = [
            {"type": r.get("type"), "id": r.get("id")}
            for r in obj.get("references", [])
            if (r.get("type"), r.get("id")) not in in_file and (r.get("type"), r.get("id")) not in store
        ]
        if missing:
            return {"type": "missing_references", "references": missing}
        if (obj_type, obj["id"]) in store and not overwrite:
            return {"type": "conflict"}
        if obj_type in self.forbidden_types:
            return {"type": "unknown", "statusCode": 403, "message": f"Unable to bulk_create {obj_type}"}
        return None


def _file_field(content_type: str, body: bytes) -> tuple[str, bytes] | Response:
    """The ``file`` part of a multipart/form-data body: (file name, content), or the 400 answer."""
    if "boundary=" not in content_type:
        return _error(400, "Bad Request", "Invalid multipart payload format")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if message.defects or not message.is_multipart():
        return _error(400, "Bad Request", "Invalid multipart payload format")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            filename = part.get_filename()
            if filename is None:
                break
            return filename, part.get_payload(decode=True) or b""
    return _error(400, "Bad Request", "[request body.file]: expected value of type [Stream] but got [undefined]")


def _meta_of(obj: Any) -> dict[str, Any]:
    attributes = obj.get("attributes") if isinstance(obj, dict) else None
    attributes = attributes if isinstance(attributes, dict) else {}
    title = attributes.get("title") or attributes.get("name")
    meta: dict[str, Any] = {"title": title}
    icon = _ICONS.get(obj.get("type") if isinstance(obj, dict) else None)
    if icon:
        meta["icon"] = icon
    return meta


def _decoded(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with its JSON-string attributes parsed, for assertions."""
    attributes = json.loads(json.dumps(obj["attributes"]))
    for path in _JSON_STRING_PATHS:
        parent = attributes
        for key in path[:-1]:
            parent = parent.get(key, {}) if isinstance(parent, dict) else {}
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), str):
            parent[path[-1]] = json.loads(parent[path[-1]])
    return {**obj, "attributes": attributes}
