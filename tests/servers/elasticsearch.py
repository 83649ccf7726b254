"""A strict Elasticsearch REST server for tests and benchmarks (127.0.0.1 only).

Elasticsearch cannot run here, so the sink and ``setup elasticsearch`` are proven
against this server, which answers as the Elasticsearch documentation and source
describe (facts: ``shared/targets/elasticsearch.md``). The official client talks
to it unmodified.

Modelled:

- ``GET /`` with ``version.number`` (``version`` knob, 8.x or 9.x); every 2xx
  answer carries ``X-Elastic-Product: Elasticsearch`` (the client refuses a
  server without it).
- Media types: bodies must be ``application/json``, ``application/x-ndjson`` or
  the vendor forms ``application/vnd.elasticsearch+json|x-ndjson;
  compatible-with=N`` (else 406). ``N`` must be this major or the one before
  (an 8.x server refuses 9 with ``400 media_type_header_exception``), and
  ``Accept`` and ``Content-Type`` must ask for the same version.
- Security (when ``api_keys`` or ``users`` are given): ``ApiKey base64(id:key)``
  and ``Basic`` auth, 401 ``security_exception`` with ``WWW-Authenticate``;
  role ``writer`` may read, ``_bulk`` and ``GET /``; role ``admin`` also manages
  templates, ILM, rollover and deletes (else 403).
- ``POST|PUT /_bulk`` and ``/<target>/_bulk``: NDJSON with a trailing newline
  (else 400), action lines ``create|index|update|delete`` with known
  parameters only, a source line after each create/index, per-item results in
  request order with HTTP 200 even when items fail, ``errors``, ``filter_path``
  (dotted patterns with ``*``; empty objects dropped), gzip request bodies, and
  413 (empty body) over ``max_content_length``.
- Data streams: an index name matching a template with ``data_stream`` is
  auto-created as a data stream with a backing index
  ``.ds-<name>-<date>-<generation>``; only ``create`` is accepted (``index`` →
  item 400 ``illegal_argument_exception``); ``@timestamp`` is required; ``_id``
  is unique per backing index (repeat → item 409
  ``version_conflict_engine_exception``) — after a rollover the same ``_id``
  is accepted again, as in Elasticsearch. Regular indices (e.g. daily ones)
  are auto-created from the best matching template without ``data_stream``,
  with its aliases; ``auto_create=False`` answers item 404
  ``index_not_found_exception``.
- Templates as Elasticsearch composes them: built-in ``logs`` (priority 100,
  ``logs-*-*``) with ``logs@mappings``, ``logs@settings`` (``ignore_malformed``,
  ILM ``logs@lifecycle``) and ``ecs@mappings``; ``PUT/GET/DELETE``
  ``_index_template``, ``_component_template`` and ``_ilm/policy`` with their
  validation (unknown keys, missing component templates not listed in
  ``ignore_missing_component_templates``, two templates with the same priority
  and overlapping patterns, components in use, ILM phases/actions/time values,
  rollover without conditions), GET answers with settings normalised to nested
  strings and ``dynamic`` as a string (so clients cannot rely on a byte echo),
  ILM policy versions that go up on every PUT, ``_simulate_index`` with the
  ``overlapping`` list, ``GET/DELETE _data_stream``, ``POST <stream>/_rollover``.
- Mappings enforced per document: explicit fields by type (keyword, wildcard,
  text, match_only_text, constant_keyword with its value, ip, date/date_nanos
  in ``strict_date_optional_time||epoch_millis``, the integer types with ranges
  and coercion, floating types, boolean, geo_point, flattened with
  ``depth_limit``), objects vs concrete values, ``dynamic`` true/false/strict/
  runtime (inherited), dynamic mapping of new fields (strings → keyword, as
  ``ecs@mappings`` does for logs), dotted field names, and
  ``index.mapping.ignore_malformed`` (+ per-field ``ignore_malformed``) for the
  types that support it. Type conflicts → item 400 ``document_parsing_exception``
  (or ``strict_dynamic_mapping_exception``), or, with ``failure_store=True`` on a
  data stream, item 201 with ``failure_store: used``.
- ``_count``/``_search`` (match_all, term, terms, ids, bool filter/must; ``size``),
  ``_refresh`` (no-op: documents are searchable at once), ``DELETE /<index>``.
- Fault knobs: ``fail_requests(*statuses)`` answers the next bulk requests with
  429 ``es_rejected_execution_exception`` / 5xx bodies (optional ``Retry-After``);
  ``fail_items(id, *statuses)`` fails one document's next attempts; 
  ``item_429_rate`` rejects a seeded share of items; ``faults.latency`` slows
  every answer (``Faults`` of the simulator base).

Not modelled: ECS ``dynamic_templates`` (strings become keyword, numbers
long/float), ``text`` with a keyword sub-field for dynamic strings outside logs,
ingest pipelines (``logs@default-pipeline`` does nothing here), ILM actually
running (no automatic rollover or deletion), shards and replicas, refresh delay
(search sees documents at once), ``update``/``delete`` bulk operations (refused
with 400 rather than executed), routing, versioning parameters (``if_seq_no``),
field-count limits, ``ignore_above``/``index: false`` effects on search, query
DSL beyond the listed queries, scoring and sorting, sniffing, aliases with
write indices, privileges finer than the two roles, TLS, and the failure store
contents beyond a list (``failed``).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import fnmatch
import gzip
import ipaddress
import math
import random
import re
import secrets as _secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from forwarder import jsoncodec
from forwarder.simulators.base import Request, Response, Simulator

_EMPTY = object()
_MEDIA = re.compile(r"^application/(?:vnd\.elasticsearch\+)?(json|x-ndjson)\s*(?:;\s*compatible-with\s*=\s*(\d+))?\s*(?:;.*)?$", re.I)
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?)?$")
_TIME_VALUE = re.compile(r"^-?\d+(?:d|h|m|s|ms|micros|nanos)$")
_INT_RANGES = {
    "long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1), "short": (-32768, 32767),
    "byte": (-128, 127), "unsigned_long": (0, 2**64 - 1),
}
_FLOATS = {"double", "float", "half_float", "scaled_float"}
_STRINGS = {"keyword", "wildcard", "text", "match_only_text", "constant_keyword", "version", "search_as_you_type"}
_MALFORMABLE = set(_INT_RANGES) | _FLOATS | {"date", "date_nanos", "ip", "geo_point"}
_BULK_PARAMS = {"_index", "_id", "routing", "pipeline", "require_alias", "require_data_stream", "dynamic_templates",
                "if_seq_no", "if_primary_term", "version", "version_type", "op_type", "retry_on_conflict", "_source"}
_INDEX_TEMPLATE_KEYS = {"index_patterns", "composed_of", "template", "priority", "version", "_meta", "data_stream",
                        "allow_auto_create", "ignore_missing_component_templates", "deprecated"}
_COMPONENT_KEYS = {"template", "version", "_meta", "deprecated"}
_TEMPLATE_KEYS = {"settings", "mappings", "aliases", "lifecycle", "data_stream_options"}
_ILM_ACTIONS = {
    "hot": {"rollover", "set_priority", "unfollow", "readonly", "shrink", "forcemerge", "searchable_snapshot", "downsample"},
    "warm": {"set_priority", "unfollow", "readonly", "allocate", "migrate", "shrink", "forcemerge", "downsample"},
    "cold": {"set_priority", "unfollow", "readonly", "searchable_snapshot", "allocate", "migrate", "downsample"},
    "frozen": {"unfollow", "searchable_snapshot"},
    "delete": {"wait_for_snapshot", "delete"},
}
_ROLLOVER_CONDITIONS = {"max_age", "max_docs", "max_size", "max_primary_shard_size", "max_primary_shard_docs",
                        "min_age", "min_docs", "min_size", "min_primary_shard_size", "min_primary_shard_docs"}

BUILTIN_COMPONENTS: dict[str, dict[str, Any]] = {
    "logs@mappings": {"template": {"mappings": {"date_detection": False, "properties": {
        "@timestamp": {"type": "date"},
        "data_stream": {"properties": {"type": {"type": "constant_keyword", "value": "logs"},
                                       "dataset": {"type": "constant_keyword"},
                                       "namespace": {"type": "constant_keyword"}}}}}},
        "version": 14, "_meta": {"managed": True, "description": "default mappings for the logs index template installed by x-pack"}},
    "logs@settings": {"template": {"settings": {"index": {
        "lifecycle": {"name": "logs@lifecycle"}, "codec": "best_compression", "default_pipeline": "logs@default-pipeline",
        "mapping": {"ignore_malformed": True, "total_fields": {"ignore_dynamic_beyond_limit": True}}}}},
        "version": 14, "_meta": {"managed": True, "description": "default settings for the logs index template installed by x-pack"}},
    "ecs@mappings": {"template": {"mappings": {"_meta": {"managed": True}}},
                     "version": 14, "_meta": {"managed": True, "description": "dynamic mappings based on ECS (not modelled here)"}},
}
BUILTIN_TEMPLATES: dict[str, dict[str, Any]] = {
    "logs": {"index_patterns": ["logs-*-*"], "priority": 100, "data_stream": {"hidden": False, "allow_custom_routing": False},
             "composed_of": ["logs@mappings", "logs@settings", "logs@custom", "ecs@mappings"],
             "ignore_missing_component_templates": ["logs@custom"], "allow_auto_create": True, "version": 14,
             "_meta": {"managed": True, "description": "default logs template installed by x-pack"}},
}
BUILTIN_POLICIES: dict[str, dict[str, Any]] = {
    "logs@lifecycle": {"phases": {"hot": {"min_age": "0ms", "actions": {"rollover": {"max_age": "30d", "max_primary_shard_size": "50gb"}}}},
                       "_meta": {"managed": True, "description": "default policy for the logs index template installed by x-pack"}},
}


class EsError(Exception):
    """An error answer: ``status`` plus Elasticsearch's ``{type, reason}``."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.type = type_
        self.reason = reason
        self.extra = extra

    def object(self) -> dict[str, Any]:
        """The ``error`` object of an item or of a whole answer."""
        return {"type": self.type, "reason": self.reason, **self.extra}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        err = self.object()
        root = {k: v for k, v in err.items() if k != "caused_by"}
        return Response.json({"error": {"root_cause": [root], **err}, "status": self.status}, self.status, headers)


@dataclass
class Index:
    """One concrete index (a data stream's backing index or a regular one)."""

    name: str
    mappings: dict[str, Any]
    settings: dict[str, str]
    data_stream: str | None = None
    aliases: list[str] = field(default_factory=list)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: _secrets.token_urlsafe(16))
    seq: int = 0


@dataclass
class DataStream:
    """A data stream: its template and backing indices, oldest first (the last one is the write index)."""

    name: str
    template: str
    indices: list[str] = field(default_factory=list)
    generation: int = 0


class ElasticsearchServer(Simulator):
    """The server. Use as ``with ElasticsearchServer() as es: es.url``."""

    VENDOR = "elasticsearch"

    def __init__(
        self,
        *,
        version: str = "8.17.0",
        api_keys: dict[str, tuple[str, str]] | None = None,
        users: dict[str, tuple[str, str]] | None = None,
        max_content_length: int = 100 * 1024 * 1024,
        failure_store: bool = False,
        auto_create: bool = True,
        builtin_templates: bool = True,
        record: bool = True,
        **kwargs: Any,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.api_keys = api_keys or {}
        self.users = users or {}
        self.max_content_length = max_content_length
        self.failure_store = failure_store
        self.auto_create = auto_create
        self.record = record
        self.item_429_rate = 0.0
        self.templates: dict[str, dict[str, Any]] = copy.deepcopy(BUILTIN_TEMPLATES) if builtin_templates else {}
        self.components: dict[str, dict[str, Any]] = copy.deepcopy(BUILTIN_COMPONENTS) if builtin_templates else {}
        self.policies: dict[str, dict[str, Any]] = {
            n: {"version": 1, "modified_date": _now(), "policy": copy.deepcopy(p)} for n, p in (BUILTIN_POLICIES.items() if builtin_templates else ())
        }
        self.streams: dict[str, DataStream] = {}
        self.indices: dict[str, Index] = {}
        self.failed: list[dict[str, Any]] = []  # documents diverted to a failure store
        self.bulk_requests = 0
        self.item_attempts: dict[str, int] = {}
        self.bulk_headers: list[dict[str, str]] = []
        self._request_faults: list[tuple[int, float | None]] = []
        self._item_faults: dict[str, list[int]] = {}
        self._state = threading.RLock()
        self._item_rng = random.Random(kwargs.get("seed", 42))
        super().__init__(**kwargs)

    # -- knobs ------------------------------------------------------------------
    def fail_requests(self, *statuses: int, retry_after: float | None = None) -> None:
        """Answer the next ``len(statuses)`` bulk requests with these statuses (429, 500, 503...)."""
        with self._state:
            self._request_faults.extend((s, retry_after) for s in statuses)

    def fail_items(self, doc_id: str, *statuses: int) -> None:
        """Fail the next attempts to write ``doc_id`` with these statuses, one per attempt."""
        with self._state:
            self._item_faults.setdefault(doc_id, []).extend(statuses)

    def rollover(self, stream: str) -> str:
        """Roll ``stream`` over (as ILM would); returns the new write index."""
        with self._state:
            return self._rollover(stream)

    def documents(self, target: str) -> list[dict[str, Any]]:
        """Every stored ``_source`` under ``target`` (names, wildcards, commas)."""
        with self._state:
            return [doc for index in self._resolve(target) for doc in index.docs.values()]

    def count(self, target: str) -> int:
        """Number of stored documents under ``target``."""
        return len(self.documents(target))

    # -- routing ----------------------------------------------------------------
    def setup(self) -> None:
        self.route("GET", r"/", self._info)
        for method in ("POST", "PUT"):
            self.route(method, r"/_bulk", self._bulk)
            self.route(method, r"/(?P<target>[^_/][^/]*)/_bulk", self._bulk)
        self.route("POST", r"/_index_template/_simulate_index/(?P<name>[^/]+)", self._simulate_index)
        for kind in ("_index_template", "_component_template", "_ilm/policy"):
            for method in ("PUT", "POST", "GET", "DELETE"):
                if method == "POST" and kind == "_ilm/policy":
                    continue
                self.route(method, rf"/{kind}/(?P<name>[^/]+)", getattr(self, f"_{method.lower()}_{kind.strip('_').replace('/', '_')}"))
        self.route("GET", r"/_data_stream/(?P<name>[^/]+)", self._get_data_stream)
        self.route("DELETE", r"/_data_stream/(?P<name>[^/]+)", self._delete_data_stream)
        self.route("POST", r"/(?P<target>[^_/][^/]*)/_rollover", self._rollover_route)
        for method in ("GET", "POST"):
            self.route(method, r"/_count", self._count)
            self.route(method, r"/(?P<target>[^_/][^/]*)/_count", self._count)
            self.route(method, r"/(?P<target>[^_/][^/]*)/_search", self._search)
            self.route(method, r"/(?P<target>[^_/][^/]*)/_refresh", self._refresh)
        self.route("DELETE", r"/(?P<target>[^_/][^/]*)", self._delete_index)

    _ADMIN = re.compile(r"^/(_index_template|_component_template|_ilm|_data_stream)|/_rollover$")

    def dispatch(self, request: Request) -> Response:
        """Size, auth and media-type checks Elasticsearch makes before any API; product header on 2xx."""
        if len(request.body) > self.max_content_length:
            return Response(413, b"", {})
        if request.header("content-encoding", "").lower() == "gzip":
            try:
                request.body = gzip.decompress(request.body)
            except (OSError, EOFError):
                return EsError(400, "parse_exception", "request body is not valid gzip").response()
        try:
            role = self._authenticate(request)
            if role != "admin" and (self._ADMIN.search(request.path) or request.method == "DELETE"):
                raise EsError(403, "security_exception", f"action [{request.method} {request.path}] is unauthorized for this API key or user, this action is granted by the cluster privileges [manage_index_templates,manage_ilm,manage,all]")
            self._check_media_types(request)
        except EsError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="security", charset="UTF-8", ApiKey'} if exc.status == 401 else None
            return exc.response(headers)
        try:
            resp = super().dispatch(request)
        except EsError as exc:
            resp = exc.response()
        if 200 <= resp.status < 300:
            resp.headers["X-Elastic-Product"] = "Elasticsearch"
        return resp

    def _authenticate(self, request: Request) -> str:
        if not self.api_keys and not self.users:
            return "admin"
        header = request.header("authorization")
        if not header:
            raise EsError(401, "security_exception", f"missing authentication credentials for REST request [{request.path}]")
        scheme, _, credentials = header.partition(" ")
        try:
            ident, _, secret = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise EsError(401, "security_exception", "unable to authenticate with provided credentials") from None
        table = self.api_keys if scheme == "ApiKey" else self.users if scheme == "Basic" else {}
        entry = table.get(ident)
        if entry is None or entry[0] != secret:
            raise EsError(401, "security_exception", "unable to authenticate with provided credentials and anonymous access is not allowed for this request")
        return entry[1]

    def _check_media_types(self, request: Request) -> None:
        versions = {}
        for name in ("accept", "content-type"):
            value = request.header(name)
            if not value:
                continue
            m = _MEDIA.match(value.strip())
            if m is None:
                if name == "content-type" and request.body:
                    raise EsError(406, "media_type_header_exception", f"Content-Type header [{value}] is not supported")
                continue
            if m.group(2) is not None:
                version = int(m.group(2))
                if version not in (self.major, self.major - 1):
                    label = "Accept" if name == "accept" else "Content-Type"
                    raise EsError(400, "media_type_header_exception",
                                  f"Invalid media-type value on headers [{label}]",
                                  caused_by={"type": "status_exception", "reason": f"{label} version must be either version {self.major} or {self.major - 1}, but found {version}. {label}={value}"})
                versions[name] = version
        if request.body and not request.header("content-type"):
            raise EsError(406, "media_type_header_exception", "Content-Type header [] is not supported")
        if len(versions) == 2 and versions["accept"] != versions["content-type"]:
            raise EsError(400, "media_type_header_exception", "A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version and the compatible versions must match.")

    # -- info -----------------------------------------------------------------------
    def _info(self, request: Request) -> Response:
        return Response.json({
            "name": "forwarder-test-node", "cluster_name": "forwarder-test", "cluster_uuid": "Kx2hL1mUTQyC2yX0xGGs5A",
            "version": {"number": self.version, "build_flavor": "default", "build_type": "docker",
                        "minimum_wire_compatibility_version": f"{self.major - 1}.17.0",
                        "minimum_index_compatibility_version": f"{self.major - 1}.0.0"},
            "tagline": "You Know, for Search",
        })

    # -- _bulk ------------------------------------------------------------------
    def _bulk(self, request: Request, target: str | None = None) -> Response:
        with self._state:
            self.bulk_requests += 1
            if self.record:
                self.bulk_headers.append(dict(request.headers))
            if self._request_faults:
                status, retry_after = self._request_faults.pop(0)
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
                return _fault(status).response(headers)
        started = time.monotonic()
        body = request.body
        if not body.endswith(b"\n"):
            raise EsError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
        ops = _parse_bulk(body)
        items: list[dict[str, Any]] = []
        errors = False
        with self._state:
            for op, meta, source in ops:
                item = self._write(op, meta, source, target)
                errors = errors or item["status"] >= 300
                items.append({op: item})
        answer = {"took": int((time.monotonic() - started) * 1000), "errors": errors, "items": items}
        return Response.json(_filtered(answer, request.arg("filter_path")))

    def _write(self, op: str, meta: dict[str, Any], source: bytes | None, target: str | None) -> dict[str, Any]:
        name = meta.get("_index") or target
        doc_id = meta.get("_id")
        head = {"_index": name, "_id": doc_id}
        if name is None:
            return _item_error(head, EsError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"))
        if doc_id is not None:
            if not isinstance(doc_id, str) or not doc_id or len(doc_id.encode()) > 512:
                return _item_error(head, EsError(400, "illegal_argument_exception", "id must be a non-empty string of at most 512 bytes"))
            self.item_attempts[doc_id] = self.item_attempts.get(doc_id, 0) + 1
            queued = self._item_faults.get(doc_id)
            if queued:
                return _item_error(head, _fault(queued.pop(0)))
        if self.item_429_rate and self._item_rng.random() < self.item_429_rate:
            return _item_error(head, _fault(429))
        if op in ("update", "delete"):
            return _item_error(head, EsError(400, "illegal_argument_exception", f"bulk {op} is not modelled by this test server"))
        try:
            index = self._write_index(name, op)
        except EsError as exc:
            return _item_error(head, exc)
        head["_index"] = index.name
        doc_id = doc_id or base64.urlsafe_b64encode(_secrets.token_bytes(15)).decode()
        head["_id"] = doc_id
        try:
            doc = jsoncodec.loads(source or b"")
        except ValueError:
            return _item_error(head, EsError(400, "document_parsing_exception", "[1:1] failed to parse: invalid JSON",
                                             caused_by={"type": "json_parse_exception", "reason": "Unexpected character"}))
        if not isinstance(doc, dict):
            return _item_error(head, EsError(400, "document_parsing_exception", "[1:1] failed to parse: the document is not an object"))
        try:
            if index.data_stream is not None and "@timestamp" not in doc:
                raise EsError(400, "document_parsing_exception", "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing",
                              caused_by={"type": "illegal_argument_exception", "reason": "data stream timestamp field [@timestamp] is missing"})
            mapper = _Mapper(index.mappings, doc_id, index.settings.get("index.mapping.ignore_malformed") == "true")
            mapper.parse(doc)
        except EsError as exc:
            if self.failure_store and index.data_stream is not None:
                self.failed.append({"index": index.name, "id": doc_id, "error": exc.object(), "document": doc})
                return {**head, "_index": f".fs-{index.data_stream}-000001", "_version": 1, "result": "created",
                        "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": 201, "failure_store": "used"}
            return _item_error(head, exc)
        if op == "create" and doc_id in index.docs:
            return _item_error(head, EsError(409, "version_conflict_engine_exception",
                                             f"[{doc_id}]: version conflict, document already exists (current version [1])",
                                             index_uuid=index.uuid, shard="0", index=index.name))
        mapper.commit()
        updated = doc_id in index.docs
        index.docs[doc_id] = doc if self.record else {}
        index.seq += 1
        return {**head, "_version": 2 if updated else 1, "result": "updated" if updated else "created",
                "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": index.seq - 1, "_primary_term": 1,
                "status": 200 if updated else 201}

    def _write_index(self, name: str, op: str) -> Index:
        stream = self.streams.get(name)
        if stream is not None:
            if op != "create":
                raise EsError(400, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams")
            return self.indices[stream.indices[-1]]
        index = self.indices.get(name)
        if index is not None:
            if index.data_stream is not None:
                raise EsError(400, "illegal_argument_exception",
                              f"index request with op_type={op} targeting backing indices is disallowed, target corresponding data stream [{index.data_stream}] instead")
            return index
        if any(name in i.aliases for i in self.indices.values()):
            raise EsError(400, "illegal_argument_exception", f"no write index is defined for alias [{name}]")
        if not self.auto_create:
            raise EsError(404, "index_not_found_exception", f"no such index [{name}] and [action.auto_create_index] is [false]",
                          **{"resource.type": "index_or_alias", "resource.id": name, "index": name})
        _check_index_name(name)
        template = self._template_for(name)
        if template is not None and self.templates[template].get("data_stream") is not None:
            if op != "create":
                raise EsError(400, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams")
            self.streams[name] = DataStream(name, template)
            return self.indices[self._rollover(name)]
        mappings, settings, aliases = self._resolved(template)
        self.indices[name] = Index(name, mappings, settings, aliases=list(aliases))
        return self.indices[name]

    def _rollover(self, name: str) -> str:
        stream = self.streams.get(name)
        if stream is None:
            raise EsError(400, "illegal_argument_exception", f"rollover target [{name}] does not exist")
        template = self._template_for(name) or stream.template
        mappings, settings, _ = self._resolved(template)
        mappings.setdefault("properties", {}).setdefault("@timestamp", {"type": "date"})
        mappings["_data_stream_timestamp"] = {"enabled": True}
        stream.generation += 1
        backing = f".ds-{name}-{dt.datetime.now(dt.timezone.utc):%Y.%m.%d}-{stream.generation:06d}"
        self.indices[backing] = Index(backing, mappings, settings, data_stream=name)
        stream.indices.append(backing)
        stream.template = template
        return backing

    # -- templates ------------------------------------------------------------------
    def _template_for(self, name: str) -> str | None:
        """The matching index template with the highest priority."""
        best = [(t.get("priority", 0), n) for n, t in self.templates.items() if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])]
        return max(best)[1] if best else None

    def _resolved(self, template: str | None) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        """(mappings, flat settings, aliases) of a new index created from ``template``."""
        mappings: dict[str, Any] = {}
        settings: dict[str, str] = {}
        aliases: dict[str, Any] = {}
        if template is None:
            return mappings, settings, aliases
        body = self.templates[template]
        parts = [self.components[c]["template"] for c in body.get("composed_of", []) if c in self.components]
        for part in [*parts, body.get("template", {})]:
            _merge_mappings(mappings, copy.deepcopy(part.get("mappings", {})))
            settings.update(_flat_settings(part.get("settings", {})))
            aliases.update(part.get("aliases", {}))
        return mappings, settings, aliases

    def _put_index_template(self, request: Request, name: str) -> Response:
        body = _json_body(request)
        unknown = sorted(set(body) - _INDEX_TEMPLATE_KEYS)
        if unknown:
            raise EsError(400, "x_content_parse_exception", f"[1:2] [index_template] unknown field [{unknown[0]}]")
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
        _check_template_block(body.get("template", {}))
        with self._state:
            ignore = set(body.get("ignore_missing_component_templates") or [])
            missing = [c for c in body.get("composed_of", []) if c not in self.components and c not in ignore]
            if missing:
                raise EsError(400, "invalid_index_template_exception",
                              f"index_template [{name}] invalid, cause [index template [{name}] specifies component templates {_list(missing)} that do not exist]")
            priority = body.get("priority", 0)
            for other, existing in self.templates.items():
                if other == name or existing.get("priority", 0) != priority:
                    continue
                if any(fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a) for a in patterns for b in existing["index_patterns"]):
                    raise EsError(400, "illegal_argument_exception",
                                  f"index template [{name}] has index patterns {_list(patterns)} matching patterns from existing templates [{other}] "
                                  f"with patterns ({other} => {_list(existing['index_patterns'])}) that have the same priority [{priority}], "
                                  "multiple index templates may not match during index creation, please use a different priority")
            self.templates[name] = {**body, "index_patterns": list(patterns)}
        return Response.json({"acknowledged": True})

    _post_index_template = _put_index_template

    def _get_index_template(self, request: Request, name: str) -> Response:
        with self._state:
            found = [{"name": n, "index_template": _normalised(t)} for n, t in sorted(self.templates.items()) if fnmatch.fnmatchcase(n, name)]
        if not found and "*" not in name:
            raise EsError(404, "resource_not_found_exception", f"index template matching [{name}] not found")
        return Response.json({"index_templates": found})

    def _delete_index_template(self, request: Request, name: str) -> Response:
        with self._state:
            if name not in self.templates:
                raise EsError(404, "resource_not_found_exception", f"index_template [{name}] missing")
            users = [s.name for s in self.streams.values() if s.template == name]
            if users:
                raise EsError(400, "illegal_argument_exception", f"unable to remove composable templates [{name}] as they are in use by a data streams {_list(users)}")
            del self.templates[name]
        return Response.json({"acknowledged": True})

    def _put_component_template(self, request: Request, name: str) -> Response:
        body = _json_body(request)
        unknown = sorted(set(body) - _COMPONENT_KEYS)
        if unknown:
            raise EsError(400, "x_content_parse_exception", f"[1:2] [component_template] unknown field [{unknown[0]}]")
        if not isinstance(body.get("template"), dict):
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [template]")
        _check_template_block(body["template"])
        with self._state:
            self.components[name] = body
        return Response.json({"acknowledged": True})

    _post_component_template = _put_component_template

    def _get_component_template(self, request: Request, name: str) -> Response:
        with self._state:
            found = [{"name": n, "component_template": _normalised(c)} for n, c in sorted(self.components.items()) if fnmatch.fnmatchcase(n, name)]
        if not found and "*" not in name:
            raise EsError(404, "resource_not_found_exception", f"component template matching [{name}] not found")
        return Response.json({"component_templates": found})

    def _delete_component_template(self, request: Request, name: str) -> Response:
        with self._state:
            if name not in self.components:
                raise EsError(404, "resource_not_found_exception", f"component template matching [{name}] not found")
            users = [n for n, t in self.templates.items() if name in t.get("composed_of", [])]
            if users:
                raise EsError(400, "illegal_argument_exception",
                              f"component templates [{name}] cannot be removed as they are still in use by index templates {_list(users)}")
            del self.components[name]
        return Response.json({"acknowledged": True})

    def _put_ilm_policy(self, request: Request, name: str) -> Response:
        body = _json_body(request)
        if set(body) != {"policy"} or not isinstance(body["policy"], dict):
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [policy]" if "policy" not in body else f"[1:2] [put_lifecycle_request] unknown field [{sorted(set(body) - {'policy'})[0]}]")
        policy = body["policy"]
        unknown = sorted(set(policy) - {"phases", "_meta", "deprecated"})
        if unknown:
            raise EsError(400, "x_content_parse_exception", f"[1:2] [lifecycle_policy] unknown field [{unknown[0]}]")
        phases = policy.get("phases")
        if not isinstance(phases, dict):
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [phases]")
        stored: dict[str, Any] = {}
        for phase, spec in phases.items():
            if phase not in _ILM_ACTIONS:
                raise EsError(400, "illegal_argument_exception", f"Lifecycle does not support phase [{phase}]")
            min_age = spec.get("min_age", "0ms")
            if not isinstance(min_age, str) or not _TIME_VALUE.match(min_age):
                raise EsError(400, "illegal_argument_exception", f"failed to parse setting [min_age] with value [{min_age}] as a time value: unit is missing or unrecognized")
            actions = spec.get("actions", {})
            for action, params in actions.items():
                if action not in _ILM_ACTIONS[phase]:
                    raise EsError(400, "illegal_argument_exception", f"invalid action [{action}] defined in phase [{phase}]")
                if action == "rollover":
                    if not set(params) & _ROLLOVER_CONDITIONS or set(params) - _ROLLOVER_CONDITIONS:
                        raise EsError(400, "illegal_argument_exception", "configuration of rollover action must have at least one max_* condition and only known conditions")
                    if "max_age" in params and not _TIME_VALUE.match(str(params["max_age"])):
                        raise EsError(400, "illegal_argument_exception", f"failed to parse setting [max_age] with value [{params['max_age']}] as a time value")
            stored[phase] = {"min_age": min_age, "actions": actions}
        with self._state:
            previous = self.policies.get(name)
            self.policies[name] = {"version": (previous["version"] + 1) if previous else 1, "modified_date": _now(),
                                   "policy": {**policy, "phases": stored}}
        return Response.json({"acknowledged": True})

    def _get_ilm_policy(self, request: Request, name: str) -> Response:
        with self._state:
            found = {n: {**copy.deepcopy(p), "in_use_by": {"indices": [], "data_streams": [], "composable_templates": []}}
                     for n, p in self.policies.items() if fnmatch.fnmatchcase(n, name)}
        if not found:
            raise EsError(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")
        return Response.json(found)

    def _delete_ilm_policy(self, request: Request, name: str) -> Response:
        with self._state:
            if self.policies.pop(name, None) is None:
                raise EsError(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")
        return Response.json({"acknowledged": True})

    def _simulate_index(self, request: Request, name: str) -> Response:
        with self._state:
            template = self._template_for(name)
            mappings, settings, aliases = self._resolved(template)
            if template is not None and self.templates[template].get("data_stream") is not None:
                mappings.setdefault("properties", {}).setdefault("@timestamp", {"type": "date"})
                mappings["_data_stream_timestamp"] = {"enabled": True}
            overlapping = [{"name": n, "index_patterns": t["index_patterns"]} for n, t in sorted(self.templates.items())
                           if n != template and any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])]
            lifecycle = self._lifecycle(template)
        resolved = {"settings": _nested_settings(settings), "mappings": _normalised_mappings(mappings), "aliases": aliases}
        if lifecycle is not None:
            resolved["lifecycle"] = lifecycle
        return Response.json({"template": resolved, "overlapping": overlapping})

    def _lifecycle(self, template: str | None) -> dict[str, Any] | None:
        """The data stream lifecycle a new data stream gets (the last part that sets one wins), as simulate shows it."""
        if template is None or self.templates[template].get("data_stream") is None:
            return None
        body = self.templates[template]
        parts = [self.components[c]["template"] for c in body.get("composed_of", []) if c in self.components]
        found = None
        for part in [*parts, body.get("template", {})]:
            if "lifecycle" in part:
                found = {"enabled": True, **part["lifecycle"]}
        return found

    # -- data streams, indices, search ------------------------------------------------
    def _get_data_stream(self, request: Request, name: str) -> Response:
        with self._state:
            found = [s for n, s in sorted(self.streams.items()) if fnmatch.fnmatchcase(n, name)]
            if not found and "*" not in name:
                raise EsError(404, "index_not_found_exception", f"no such index [{name}]", index=name)
            out = [{"name": s.name, "timestamp_field": {"name": "@timestamp"}, "generation": s.generation, "status": "GREEN",
                    "template": s.template, "hidden": False, "system": False,
                    "ilm_policy": self.indices[s.indices[-1]].settings.get("index.lifecycle.name"),
                    "indices": [{"index_name": i, "index_uuid": self.indices[i].uuid} for i in s.indices]} for s in found]
        return Response.json({"data_streams": out})

    def _delete_data_stream(self, request: Request, name: str) -> Response:
        with self._state:
            stream = self.streams.pop(name, None)
            if stream is None:
                raise EsError(404, "index_not_found_exception", f"no such index [{name}]", index=name)
            for backing in stream.indices:
                self.indices.pop(backing, None)
        return Response.json({"acknowledged": True})

    def _rollover_route(self, request: Request, target: str) -> Response:
        with self._state:
            old = self.streams[target].indices[-1] if target in self.streams else None
            new = self._rollover(target)
        return Response.json({"acknowledged": True, "shards_acknowledged": True, "old_index": old, "new_index": new,
                              "rolled_over": True, "dry_run": False, "conditions": {}})

    def _delete_index(self, request: Request, target: str) -> Response:
        with self._state:
            for name in target.split(","):
                if "*" in name:
                    raise EsError(400, "illegal_argument_exception", "Wildcard expressions or all indices are not allowed")
                index = self.indices.get(name)
                if index is None:
                    raise EsError(404, "index_not_found_exception", f"no such index [{name}]", index=name)
                if index.data_stream is not None and self.streams[index.data_stream].indices[-1] == name:
                    raise EsError(400, "illegal_argument_exception", f"index [{name}] is the write index for data stream [{index.data_stream}] and cannot be deleted")
                del self.indices[name]
        return Response.json({"acknowledged": True})

    def _resolve(self, target: str) -> list[Index]:
        """Indices behind a comma-separated list of names, wildcards, data streams and aliases."""
        out: dict[str, Index] = {}
        for expr in target.split(","):
            if expr in ("_all", "*"):
                expr = "*"
            matched = False
            for name, stream in self.streams.items():
                if fnmatch.fnmatchcase(name, expr):
                    matched = True
                    out.update((i, self.indices[i]) for i in stream.indices)
            for name, index in self.indices.items():
                visible = not name.startswith(".") or "*" not in expr
                if visible and (fnmatch.fnmatchcase(name, expr) or any(fnmatch.fnmatchcase(a, expr) for a in index.aliases)):
                    matched = True
                    out[name] = index
            if not matched and "*" not in expr:
                raise EsError(404, "index_not_found_exception", f"no such index [{expr}]", index=expr)
        return list(out.values())

    def _hits(self, request: Request, target: str | None) -> tuple[list[tuple[Index, str, dict[str, Any]]], dict[str, Any]]:
        body = _json_body(request) if request.body else {}
        query = body.get("query") or {"match_all": {}}
        with self._state:
            indices = self._resolve(target or "*")
            hits = [(i, doc_id, doc) for i in indices for doc_id, doc in i.docs.items() if _matches(query, doc_id, doc)]
        return hits, body

    def _count(self, request: Request, target: str | None = None) -> Response:
        hits, _ = self._hits(request, target)
        return Response.json({"count": len(hits), "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})

    def _search(self, request: Request, target: str) -> Response:
        hits, body = self._hits(request, target)
        size = int(request.arg("size") or body.get("size", 10))
        return Response.json({
            "took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if hits else None,
                     "hits": [{"_index": i.name, "_id": doc_id, "_score": 1.0, "_source": doc} for i, doc_id, doc in hits[:size]]},
        })

    def _refresh(self, request: Request, target: str) -> Response:
        with self._state:
            self._resolve(target)
        return Response.json({"_shards": {"total": 1, "successful": 1, "failed": 0}})


# -- bulk parsing and answers ---------------------------------------------------------

def _parse_bulk(body: bytes) -> list[tuple[str, dict[str, Any], bytes | None]]:
    lines = body.split(b"\n")[:-1]
    ops: list[tuple[str, dict[str, Any], bytes | None]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        try:
            action = jsoncodec.loads(line)
        except ValueError:
            raise EsError(400, "x_content_parse_exception", f"[{i}:1] Malformed action/metadata line [{i}], expected START_OBJECT") from None
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{i}], expected a single action")
        op, meta = next(iter(action.items()))
        if op not in ("create", "index", "update", "delete"):
            raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] or [update] but found [{op}]")
        if not isinstance(meta, dict):
            raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{i}], expected START_OBJECT but found [{type(meta).__name__}]")
        unknown = sorted(set(meta) - _BULK_PARAMS)
        if unknown:
            raise EsError(400, "illegal_argument_exception", f"Action/metadata line [{i}] contains an unknown parameter [{unknown[0]}]")
        source = None
        if op != "delete":
            if i >= len(lines):
                raise EsError(400, "illegal_argument_exception", f"The bulk request must be terminated by a newline [\\n] (no source after line [{i}])")
            source = lines[i]
            i += 1
        ops.append((op, meta, source))
    if not ops:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    return ops


def _fault(status: int) -> EsError:
    if status == 429:
        return EsError(429, "es_rejected_execution_exception",
                       "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]")
    if status == 503:
        return EsError(503, "unavailable_shards_exception", "[logs][0] primary shard is not active Timeout: [1m]")
    return EsError(status, "internal_server_error" if status == 500 else "status_exception", f"injected failure with status {status}")


def _item_error(head: dict[str, Any], exc: EsError) -> dict[str, Any]:
    return {**head, "status": exc.status, "error": exc.object()}


def _filtered(answer: Any, filter_path: str | None) -> Any:
    if not filter_path:
        return answer
    result = _filter(answer, [p.split(".") for p in filter_path.split(",") if p])
    return {} if result is _EMPTY else result


def _filter(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        kept = [r for r in (_filter(v, paths) for v in value) if r is not _EMPTY]
        return kept if kept else _EMPTY
    if not isinstance(value, dict):
        return _EMPTY
    out = {}
    for key, child in value.items():
        rest = [p[1:] for p in paths if p[0] == "*" or p[0] == key or ("*" in p[0] and fnmatch.fnmatchcase(key, p[0]))]
        if not rest:
            continue
        if any(not r for r in rest):
            out[key] = child
            continue
        kept = _filter(child, rest)
        if kept is not _EMPTY:
            out[key] = kept
    return out if out else _EMPTY


# -- mappings ------------------------------------------------------------------------

class _Mapper:
    """Checks one document against an index's mappings; ``commit`` applies the dynamic updates."""

    def __init__(self, mappings: dict[str, Any], doc_id: str, ignore_malformed: bool) -> None:
        self.root = mappings
        self.doc_id = doc_id
        self.ignore_malformed = ignore_malformed
        self.pending: dict[tuple[int, str], tuple[dict[str, Any], str, dict[str, Any]]] = {}
        self.fresh: set[int] = set()
        self.constants: list[tuple[dict[str, Any], Any]] = []
        self.ignored: list[str] = []

    def parse(self, doc: dict[str, Any]) -> None:
        self._object(self.root, doc, "", _dynamic(self.root.get("dynamic", True)))

    def commit(self) -> None:
        for owner, key, mapping in self.pending.values():
            owner.setdefault("properties", {})[key] = mapping
        for mapping, value in self.constants:
            mapping.setdefault("value", value)

    def _object(self, mapping: dict[str, Any], value: dict[str, Any], path: str, inherited: str) -> None:
        dynamic = _dynamic(mapping.get("dynamic", inherited))
        props = mapping.get("properties") or {}
        for key, child in value.items():
            if "." in key and key.strip("."):
                head, _, rest = key.partition(".")
                key, child = head, {rest: child}
            full = f"{path}.{key}" if path else key
            sub = props.get(key)
            if sub is None:
                entry = self.pending.get((id(mapping), key))
                sub = entry[2] if entry else None
            if sub is None:
                if dynamic == "strict":
                    raise EsError(400, "strict_dynamic_mapping_exception",
                                  f"[1:1] mapping set to strict, dynamic introduction of [{key}] within [{path or '_doc'}] is not allowed")
                if dynamic != "true":
                    continue
                sub = _infer(child)
                if sub is None:
                    continue
                if id(mapping) in self.fresh:
                    mapping.setdefault("properties", {})[key] = sub
                    props = mapping["properties"]
                else:
                    self.pending[(id(mapping), key)] = (mapping, key, sub)
                self.fresh.add(id(sub))
            self._value(sub, child, full, key, dynamic)

    def _value(self, mapping: dict[str, Any], value: Any, full: str, key: str, dynamic: str) -> None:
        kind = mapping.get("type", "object")
        if kind in ("object", "nested"):
            for item in (value if isinstance(value, list) else [value]):
                if item is None:
                    continue
                if not isinstance(item, dict):
                    raise EsError(400, "document_parsing_exception",
                                  f"[1:1] object mapping for [{full}] tried to parse field [{key}] as object, but found a concrete value")
                self._object(mapping, item, full, dynamic)
            return
        if kind == "flattened":
            if _depth(value) > int(mapping.get("depth_limit", 20)):
                raise EsError(400, "document_parsing_exception", f"[1:1] failed to parse field [{full}] of type [flattened]: the provided [flattened] field [{full}] exceeds the maximum depth limit of [{mapping.get('depth_limit', 20)}]")
            return
        for item in _leaves(value):
            if item is None:
                continue
            if kind == "constant_keyword":
                self._constant(mapping, item, full)
                continue
            if _valid(kind, item):
                continue
            if kind in _MALFORMABLE and not isinstance(item, dict) and mapping.get("ignore_malformed", self.ignore_malformed):
                self.ignored.append(full)
                continue
            preview = jsoncodec.dumps_str(item)[:40]
            raise EsError(400, "document_parsing_exception",
                          f"[1:1] failed to parse field [{full}] of type [{kind}] in document with id '{self.doc_id}'. Preview of field's value: '{preview}'",
                          caused_by={"type": "illegal_argument_exception" if not isinstance(item, dict) else "illegal_state_exception",
                                     "reason": f"failed to parse [{preview}] as [{kind}]"})

    def _constant(self, mapping: dict[str, Any], item: Any, full: str) -> None:
        expected = mapping.get("value")
        if isinstance(item, dict):
            raise EsError(400, "document_parsing_exception", f"[1:1] failed to parse field [{full}] of type [constant_keyword]")
        text = item if isinstance(item, str) else jsoncodec.dumps_str(item)
        if expected is None:
            self.constants.append((mapping, text))
        elif text != expected:
            raise EsError(400, "document_parsing_exception",
                          f"[1:1] failed to parse field [{full}] of type [constant_keyword] in document with id '{self.doc_id}'.",
                          caused_by={"type": "illegal_argument_exception",
                                     "reason": f"[constant_keyword] field [{full}] only accepts values that are equal to the value defined in the mappings [{expected}], but got [{text}]"})


def _dynamic(value: Any) -> str:
    return str(value).lower()


def _infer(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        value = next((v for v in _leaves(value) if v is not None), None)
    if value is None:
        return None
    if isinstance(value, dict):
        return {"properties": {}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    return {"type": "keyword", "ignore_above": 1024}


def _leaves(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    out: list[Any] = []
    for item in value:
        out.extend(_leaves(item))
    return out


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_depth(v) for v in value), default=0)
    return 0


def _valid(kind: str, value: Any) -> bool:
    if isinstance(value, dict):
        return kind == "geo_point" and _is_number(value.get("lat")) and _is_number(value.get("lon"))
    if kind in _STRINGS:
        return True
    if kind == "ip":
        if not isinstance(value, str):
            return False
        try:
            ipaddress.ip_address(value)
            return True
        except ValueError:
            return False
    if kind in ("date", "date_nanos"):
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, str) and _valid_date(value)
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        number = _as_number(value)
        return number is not None and math.isfinite(number) and low <= int(number) <= high
    if kind in _FLOATS:
        number = _as_number(value)
        return number is not None and math.isfinite(number)
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false", "")
    if kind == "geo_point":
        if isinstance(value, str):
            parts = value.split(",")
            return len(parts) == 2 and all(_as_number(p.strip()) is not None for p in parts)
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _valid_date(text: str) -> bool:
    m = _DATE.match(text)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) if g else None for g in m.groups()[:6])
    try:
        dt.datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError:
        return False
    return True


def _merge_mappings(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if key == "properties":
            props = into.setdefault("properties", {})
            for name, spec in value.items():
                old = props.get(name)
                if old is not None and "type" not in old and "type" not in spec:
                    _merge_mappings(old, spec)
                else:
                    props[name] = spec
        else:
            into[key] = value


# -- settings and normalisation --------------------------------------------------------

def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_settings(value, name + "."))
        else:
            if not name.startswith("index."):
                name = "index." + name
            out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _nested_settings(flat: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in sorted(flat.items()):
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _normalised_mappings(mappings: Any) -> Any:
    if isinstance(mappings, dict):
        return {k: (_dynamic(v) if k == "dynamic" else _normalised_mappings(v)) for k, v in mappings.items()}
    if isinstance(mappings, list):
        return [_normalised_mappings(v) for v in mappings]
    return mappings


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    """A stored template as GET shows it: settings nested with string values, ``dynamic`` as a string."""
    out = copy.deepcopy(body)
    block = out.get("template")
    if isinstance(block, dict):
        if "settings" in block:
            block["settings"] = _nested_settings(_flat_settings(block["settings"]))
        if "mappings" in block:
            block["mappings"] = _normalised_mappings(block["mappings"])
    return out


def _check_template_block(block: Any) -> None:
    if not isinstance(block, dict):
        raise EsError(400, "x_content_parse_exception", "[1:2] [template] must be an object")
    unknown = sorted(set(block) - _TEMPLATE_KEYS)
    if unknown:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [template] unknown field [{unknown[0]}]")
    lifecycle = block.get("lifecycle", {})
    unknown = sorted(set(lifecycle) - {"enabled", "data_retention", "downsampling"}) if isinstance(lifecycle, dict) else ["lifecycle"]
    if unknown:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [lifecycle] unknown field [{unknown[0]}]")
    retention = lifecycle.get("data_retention")
    if retention is not None and not (isinstance(retention, str) and re.fullmatch(r"\d+(?:nanos|micros|ms|s|m|h|d)", retention)):
        raise EsError(400, "illegal_argument_exception", f"failed to parse setting [data_retention] with value [{retention}] as a time value")
    mappings = block.get("mappings", {})
    for name, spec in _walk_properties(mappings):
        kind = spec.get("type", "object")
        if kind not in _STRINGS | _MALFORMABLE | {"object", "nested", "flattened", "boolean", "binary", "alias", "dense_vector"}:
            raise EsError(400, "mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{name}]")
        if "dynamic" in spec and _dynamic(spec["dynamic"]) not in ("true", "false", "strict", "runtime"):
            raise EsError(400, "mapper_parsing_exception", f"Could not convert [{name}.dynamic] to boolean")


def _walk_properties(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, spec in (mapping.get("properties") or {}).items():
        if not isinstance(spec, dict):
            raise EsError(400, "mapper_parsing_exception", f"Expected map for property [{prefix}{name}]")
        out.append((prefix + name, spec))
        out.extend(_walk_properties(spec, f"{prefix}{name}."))
    return out


def _check_index_name(name: str) -> None:
    if name != name.lower() or name.startswith(("_", "-", "+")) or set(name) & set('\\/*?"<>| ,#:'):
        raise EsError(400, "invalid_index_name_exception", f"Invalid index name [{name}], must be lowercase and must not contain [\\, /, *, ?, \", <, >, |, ' ', ',', #, :]",
                      index=name)


# -- search ------------------------------------------------------------------------------

def _field_values(doc: Any, path: str) -> list[Any]:
    if path in doc if isinstance(doc, dict) else False:
        return _leaves(doc[path])
    head, _, rest = path.partition(".")
    if not rest or not isinstance(doc, dict):
        return []
    out: list[Any] = []
    for child in _leaves(doc.get(head)):
        out.extend(_field_values(child, rest))
    return out


def _matches(query: dict[str, Any], doc_id: str, doc: dict[str, Any]) -> bool:
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", "query malformed, must start with a single query name")
    kind, spec = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "ids":
        return doc_id in spec.get("values", [])
    if kind in ("term", "terms"):
        (name, wanted), = spec.items()
        if kind == "term":
            wanted = [wanted.get("value") if isinstance(wanted, dict) else wanted]
        return any(v in wanted for v in _field_values(doc, name))
    if kind == "bool":
        clauses = [c for k in ("filter", "must") for c in (spec.get(k) if isinstance(spec.get(k), list) else [spec[k]] if k in spec else [])]
        return all(_matches(c, doc_id, doc) for c in clauses)
    raise EsError(400, "parsing_exception", f"unknown query [{kind}] (not modelled by this test server)")


# -- helpers ---------------------------------------------------------------------------

def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = jsoncodec.loads(request.body)
    except ValueError:
        raise EsError(400, "x_content_parse_exception", "[1:1] request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise EsError(400, "x_content_parse_exception", "[1:1] request body must be an object")
    return body


def _list(names: list[str]) -> str:
    return "[" + ", ".join(names) + "]"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground and print the URL (benchmarks run the server in its own process)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="8.17.0", help="Elasticsearch version to claim")
    parser.add_argument("--no-record", action="store_true", help="keep ids for 409s but not document bodies")
    args = parser.parse_args(argv)
    server = ElasticsearchServer(version=args.version, record=not args.no_record).start()
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
