"""Elasticsearch sink: bulk ``create`` of ECS documents into data streams, through the official client.

Where documents go
    ``index_mode = "data_stream"`` (default): ``logs-forwarder_<vendor>.<product>-<namespace>``,
    governed by the ``forwarder`` index template (``siem-forwarder setup elasticsearch``).
    ``index_mode = "daily"``: ``forwarder-<vendor>.<product>-<namespace>-YYYY.MM.DD``, the day
    taken from the event's own ``@timestamp`` (UTC), read through the alias ``forwarder-audit``.

No duplicates on replay
    Every document is written with ``create`` and ``_id`` = the event's deterministic id, so a
    replay answers ``409 version_conflict_engine_exception``, which counts as delivered.
    Elasticsearch enforces ``_id`` uniqueness per *backing index* only: after a data stream
    rolls over, a replay of events written before the rollover lands in the new write index
    and is stored a second time (elastic/elasticsearch#44794). Replays soon after a write are
    safe; keep rollover coarse (the ``forwarder`` ILM policy rolls over after 30 days or 50 GB
    per primary shard). Whoever must replay old windows without duplicates uses
    ``index_mode = "daily"``: an event always maps to the same index, whenever it is sent, so
    the 409 still catches it. The price: one index per dataset and day (size it for your
    volume) and retention counted from each index's creation.

Failures, per item of a bulk response
    201 accepted; 409 accepted (already there); 429 and 5xx retried, only those items, with
    jittered exponential backoff (``[sink.http] retries/backoff_base/backoff_max``); other
    4xx (mapping conflicts: ``document_parsing_exception``) are returned as ``Rejected`` with
    Elasticsearch's reason and dead-lettered by the pipeline; 404 ``index_not_found`` stops
    the batch (run ``setup``); a 2xx diverted to the data stream's failure store is also
    dead-lettered, so it is not silently counted as stored. Whole-request 429/5xx and
    connection errors are retried the same way (each round tries every host once); 413 splits
    the request; 401/403 fail at once.

Elasticsearch 8 and 9
    The client sends ``Accept``/``Content-Type: application/vnd.elasticsearch+json;
    compatible-with=<client major>``. Elasticsearch 8.x refuses ``compatible-with=9``, while
    9.x accepts 8 (REST compatibility with the previous major). So the package depends on
    the **8.x client** (``elasticsearch>=8.13,<9``), which works unchanged with
    Elasticsearch 8.13+ and 9.x. If a 9.x client is installed against an 8.x cluster, the
    server's ``media_type_header_exception`` is reported with that advice.

Privileges: cluster ``monitor``; on ``logs-forwarder_*-*`` (and ``forwarder-*`` in daily
mode) ``create_doc`` and ``auto_configure``. ``setup`` also needs ``manage_index_templates``
and ``manage_ilm``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from forwarder import jsoncodec
from forwarder.config import Config, SinkConfig
from forwarder.ecs import DATASET_PREFIX, to_ecs
from forwarder.errors import AuthError, ConfigError, SetupError, SinkError
from forwarder.es_templates import DAILY_PREFIX, DAILY_TEMPLATE, DATA_STREAM_TEMPLATE, LIFECYCLES, install
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings, _reason as innermost_reason, backoff_delay, redirect_error, retry_after_seconds, safe_url
from forwarder.options import Option, address_problem, require_tls
from forwarder.secrets import Secret, api_key_credentials, basic_credentials, redact
from forwarder.sinks.base import Rejected, Sink

# The client logs one INFO line per request; our own lines say what matters.
logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)

# Only what the sink reads back: keeps 5000-item responses small and quick to parse. Every item
# keeps its ``status``, so no item is ever empty: Elasticsearch drops empty objects from filtered
# arrays, and the items must stay one per document, in order. (No filter_path can make an
# all-created answer empty yet keep that correspondence when some item fails: filters are static.)
FILTER_PATH = "errors,items.*.status,items.*.error,items.*.failure_store"
# What a document created in the data stream (not its failure store) reads as under FILTER_PATH.
_CREATED = {"create": {"status": 201}}
_BAD_NAME = set('\\/*?"<>|,# -') | {c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def _check_namespace(value: str) -> str | None:
    if len(value) > 100 or set(value) & _BAD_NAME or value.startswith(("_", ".", "+")):
        return "must be lowercase, at most 100 characters, without '-', spaces or \\ / * ? \" < > | , #"
    return None


def _check_hosts(value: list[Any]) -> str | None:
    for n, host in enumerate(value, 1):
        # The value is not echoed: a URL written with a password in it must not reach the error line.
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            return f"host {n} is not an http:// or https:// URL (e.g. https://es1:9200)"
        parts = urlsplit(host)
        if parts.username or parts.password or parts.query:
            return f"host {n} must not carry credentials or a query string (use api_key, or username and password)"
        problem = address_problem(host)
        if problem:
            return f"host {n} {problem}"
    return None


def _check_cloud_id(value: str) -> str | None:
    """Decoded the way the client decodes it, so a bad id is a config error, not a traceback later."""
    from elastic_transport.client_utils import parse_cloud_id

    try:
        parse_cloud_id(value)
    except (ValueError, TypeError, UnicodeError):
        return "is not an Elastic Cloud id (copy it from the deployment's page: name:base64)"
    return None


class ElasticsearchSink(Sink):
    """Bulk-create ECS documents into data streams (or daily indices)."""

    TYPE = "elasticsearch"
    OPTIONS = {
        "hosts": Option("list", [], "Elasticsearch URLs, e.g. https://es1:9200 (several for failover)", check=_check_hosts),
        "cloud_id": Option("str", None, "Elastic Cloud deployment id (instead of hosts)", check=_check_cloud_id),
        "api_key": Option("secret", None, "API key: 'id:key' or the encoded form"),
        "username": Option("str", None, "basic auth user (with password)"),
        "password": Option("secret", None, "basic auth password"),
        "namespace": Option("str", "default", "data_stream.namespace", check=_check_namespace),
        "index_mode": Option("str", "data_stream", "data_stream, or daily for replays idempotent across rollovers",
                             choices=("data_stream", "daily")),
        "batch_bytes": Option("int", 10 * 1024 * 1024, "most bytes per bulk request", minimum=1024),
        "compress": Option("bool", False, "gzip request bodies"),
        "retention": Option("duration", 365 * 86400.0, "setup: delete data this old (0 keeps it forever)"),
        "rollover_max_age": Option("duration", 30 * 86400.0, "setup: roll a data stream over after this long", minimum=3600),
        "rollover_max_primary_shard_size": Option("str", "50gb", "setup: ... or when a primary shard is this big"),
        "lifecycle": Option("str", "ilm", "setup: retention by ILM policies, or dsl (data stream lifecycle: Serverless has no ILM; rollover is Elasticsearch's)",
                            choices=LIFECYCLES),
        "allow_insecure_http": Option("bool", False, "accept plain http:// to a non-loopback host (credentials then travel in clear)"),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """Exactly one of hosts / cloud_id; at most one auth scheme, complete."""
        if bool(options["hosts"]) == bool(options["cloud_id"]):
            raise ConfigError(f"{where}.hosts", "set either hosts or cloud_id (exactly one)")
        if (options["username"] is None) != (options["password"] is None):
            raise ConfigError(f"{where}.username", "username and password go together")
        if options["api_key"] is not None and options["username"] is not None:
            raise ConfigError(f"{where}.api_key", "use either api_key or username/password, not both")
        if options["lifecycle"] == "dsl" and options["index_mode"] == "daily":
            raise ConfigError(f"{where}.lifecycle", "dsl manages data streams only; daily indices are deleted by ILM (use lifecycle = \"ilm\")")
        require_tls(options["hosts"], options["allow_insecure_http"], f"{where}.hosts")

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.namespace: str = self.options["namespace"]
        self.daily = self.options["index_mode"] == "daily"
        self.batch_bytes: int = self.options["batch_bytes"]
        self.batch_events = config.batch_events
        self.settings = config.http
        self.client = build_client(self.options, config.http, f"sink {self.name}")
        self.sleep: Callable[[float], None] = time.sleep
        self._actions: dict[Any, bytes] = {}

    # -- encoding ------------------------------------------------------------
    def _action_prefix(self, event: AuditEvent) -> bytes:
        """``{"create":{"_index":"…","_id":`` for the event's target, cached per target."""
        day = event.timestamp.astimezone(dt.timezone.utc).date() if self.daily else None
        key = (event.vendor, event.product, day)
        prefix = self._actions.get(key)
        if prefix is None:
            stream = f"{event.vendor}.{event.product}-{self.namespace}"
            index = f"{DAILY_PREFIX}{stream}-{day:%Y.%m.%d}" if day else f"logs-{DATASET_PREFIX}{stream}"
            prefix = self._actions[key] = b'{"create":{"_index":' + jsoncodec.dumps(index) + b',"_id":'
        return prefix

    def encode(self, events: list[AuditEvent]) -> list[bytes]:
        """One NDJSON action + document pair per event."""
        dumps = jsoncodec.dumps
        ns = self.namespace
        prefix = self._action_prefix
        return [prefix(e) + dumps(e.id) + b"}}\n" + dumps(to_ecs(e, ns)) + b"\n" for e in events]

    def _chunks(self, events: list[AuditEvent], lines: list[bytes]) -> Iterator[list[tuple[AuditEvent, bytes]]]:
        """Bulk requests of at most ``batch_events`` documents and ``batch_bytes`` bytes."""
        chunk: list[tuple[AuditEvent, bytes]] = []
        size = 0
        for event, line in zip(events, lines):
            if chunk and (len(chunk) >= self.batch_events or size + len(line) > self.batch_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append((event, line))
            size += len(line)
        if chunk:
            yield chunk

    # -- delivery ------------------------------------------------------------
    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Deliver every event; return those Elasticsearch refused as bad data."""
        rejected: list[Rejected] = []
        for chunk in self._chunks(events, self.encode(events)):
            rejected.extend(self._deliver(chunk))
        return rejected

    def _deliver(self, chunk: list[tuple[AuditEvent, bytes]]) -> list[Rejected]:
        """Send one bulk request, then resend only its retryable items until none is left."""
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout, SerializationError
        from elasticsearch import ApiError, UnsupportedProductError

        rejected: list[Rejected] = []
        pending = chunk
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            hinted: float | None = None
            try:
                resp = self.client.bulk(operations=b"".join(line for _, line in pending), filter_path=FILTER_PATH)
            except (UnsupportedProductError, SerializationError):
                with translated(f"sink {self.name}"):
                    raise
            except (TransportConnectionError, ConnectionTimeout) as exc:
                problem = _unreachable(exc)
            except ApiError as exc:
                status = exc.meta.status
                if status == 413:
                    return rejected + self._split(pending)
                if status != 429 and status < 500:
                    raise self._request_error(exc) from None
                problem = f"HTTP {status}: {_reason(exc.body)}"
                hinted = retry_after_seconds(exc.meta.headers.get("retry-after"))
            else:
                pending, problem = self._sort_items(pending, resp.body, rejected)
                if not pending:
                    return rejected
            if attempt < attempts:
                delay = backoff_delay(self.settings, attempt)
                self.sleep(max(delay, hinted or 0.0))
        raise SinkError(
            f"sink {self.name}: {len(pending)} of {len(chunk)} documents not accepted after {attempts} attempts: {problem}"
        )

    def _sort_items(
        self, sent: list[tuple[AuditEvent, bytes]], body: Any, rejected: list[Rejected]
    ) -> tuple[list[tuple[AuditEvent, bytes]], str]:
        """Read a bulk response: fill ``rejected``; return the items to retry and why."""
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(sent):
            count = len(items) if isinstance(items, list) else "no"
            raise SinkError(f"sink {self.name}: bulk response has {count} items for {len(sent)} documents")
        if body.get("errors") is False and _all_created(items):
            return [], ""
        retry: list[tuple[AuditEvent, bytes]] = []
        problem = ""
        for pair, item in zip(sent, items):
            result = next(iter(item.values()))
            status = result.get("status", 0)
            if status < 300:
                if result.get("failure_store") == "used":
                    rejected.append(Rejected(pair[0], "Elasticsearch stored the document in the data stream's failure store (it failed ingest or mapping)"))
                continue
            if status == 409:
                continue  # already stored under this _id: a replay
            if status == 429 or status >= 500:
                retry.append(pair)
                problem = f"HTTP {status}: {_reason(result.get('error'))}"
            elif status == 404:
                raise SinkError(
                    f"sink {self.name}: HTTP 404: {_reason(result.get('error'))} "
                    "(run `siem-forwarder setup elasticsearch`, or allow auto-creating indices)"
                )
            else:
                rejected.append(Rejected(pair[0], f"Elasticsearch refused the document: HTTP {status}: {_reason(result.get('error'))}"))
        return retry, problem

    def _split(self, pending: list[tuple[AuditEvent, bytes]]) -> list[Rejected]:
        """413: send the halves separately; one document alone that is too large is rejected."""
        if len(pending) == 1:
            size = len(pending[0][1])
            return [Rejected(pending[0][0], f"Elasticsearch refused the document: HTTP 413: request of {size} bytes exceeds http.max_content_length")]
        half = len(pending) // 2
        return self._deliver(pending[:half]) + self._deliver(pending[half:])

    def _request_error(self, exc: Any) -> Exception:
        status = exc.meta.status
        url = _node_url(exc) + "/_bulk"
        detail = _reason(exc.body)
        if status in (401, 403):
            return AuthError(f"sink {self.name}", "PUT", url, status, detail)
        return SinkError(f"sink {self.name}: bulk request refused: HTTP {status}: {detail}{_advice(exc.body)}")

    # -- the rest --------------------------------------------------------------
    def check(self) -> str:
        """Who answers, which version, and that our index template is installed (writes nothing).

        A missing template is a failure: without it the documents get dynamic mappings.
        """
        template = DAILY_TEMPLATE if self.daily else DATA_STREAM_TEMPLATE
        with translated(f"sink {self.name}"):
            info = self.client.info().body
            version = info.get("version", {}).get("number", "?")
            line = f"Elasticsearch {version} (cluster {info.get('cluster_name', '?')})"
            from elasticsearch import AuthorizationException, NotFoundError

            try:
                self.client.indices.get_index_template(name=template)
            except NotFoundError:
                raise SinkError(
                    f"sink {self.name}: {line}: index template {template!r} is missing; "
                    f"install it with `siem-forwarder setup elasticsearch --config <this config> --sink {self.name}`"
                ) from None
            except AuthorizationException:
                return line + "; cannot read index templates with these credentials (not verified)"
            return line + f"; index template {template!r} installed"

    def close(self) -> None:
        """Release pooled connections."""
        self.client.close()


def build_client(options: dict[str, Any], http: HttpSettings, what: str = "elasticsearch") -> Any:
    """An ``elasticsearch.Elasticsearch`` client from validated sink options and ``[sink.http]``.

    ``what`` names the sink in the line of a refused redirect.

    The client's own retries only fail over between hosts on connection errors (one
    attempt per host); status retries and backoff are the sink's, per item.
    """
    from elasticsearch import Elasticsearch
    from elastic_transport import RequestsHttpNode

    kwargs: dict[str, Any] = {
        "request_timeout": http.timeout,
        "max_retries": max(0, len(options["hosts"]) - 1),
        "retry_on_status": (),
        "retry_on_timeout": True,  # safe: create with a fixed _id makes a resend a 409
        "http_compress": options["compress"],
        "verify_certs": http.verify,
    }
    proxy = http.proxy

    class Node(RequestsHttpNode):
        """The client's requests node, with the configured CA bundle, ``verify`` and proxy winning.

        requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace a session's CA bundle (and
        ``verify = false``) and HTTPS_PROXY its proxy unless they are given per request, which
        elastic_transport does not do. Unconfigured, the environment variables still apply.
        """

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            session = self.session
            if proxy:
                session.proxies = {"http": proxy, "https": proxy}
            merge = session.merge_environment_settings

            def configured_first(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
                return merge(url, {**(proxies or {}), **session.proxies}, stream, session.verify if verify is None else verify, cert)

            session.merge_environment_settings = configured_first  # type: ignore[method-assign]
            send = session.send

            def without_redirects(request: Any, **kwargs: Any) -> Any:
                # elastic_transport lets requests follow redirects, re-sending the bulk body elsewhere.
                return send(request, **{**kwargs, "allow_redirects": False})

            session.send = without_redirects  # type: ignore[method-assign]

        def perform_request(self, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
            """A redirect answer is refused with one line naming both origins (``forwarder.http``'s rule)."""
            resp = super().perform_request(method, target, *args, **kwargs)
            if resp.meta.status in (301, 302, 303, 307, 308):
                raise redirect_error(what, method, self.base_url + target, resp.meta.status, resp.meta.headers.get("location"))
            return resp

    kwargs["node_class"] = Node
    if http.ca_bundle:
        kwargs["ca_certs"] = http.ca_bundle
    if http.client_cert:
        kwargs["client_cert"] = http.client_cert
    if http.client_key:
        kwargs["client_key"] = http.client_key
    if not http.verify:
        kwargs["ssl_show_warn"] = False
    # Encoded here, as the client would, so the header's base64 form is a registered secret too.
    api_key: Secret | None = options["api_key"]
    if api_key is not None:
        kwargs["api_key"] = api_key_credentials(api_key).reveal()
    elif options["username"] is not None:
        kwargs["basic_auth"] = basic_credentials(options["username"], options["password"]).reveal()
    from elasticsearch.serializer import NdjsonSerializer

    class ReadyNdjson(NdjsonSerializer):
        """A bulk body the sink built (bytes, newline-terminated) goes out as it is. The client's own
        serializer copies it into a bytearray and that into bytes: two copies of up to ``batch_bytes``
        per request, and the memory for them."""

        def dumps(self, data: Any) -> bytes:
            if type(data) is bytes and data.endswith(b"\n"):
                return data
            return super().dumps(data)

    serializers: dict[str, Any] = {"application/x-ndjson": ReadyNdjson()}  # the client maps the compat types too
    try:
        from elasticsearch.serializer import OrjsonSerializer

        serializers["application/json"] = OrjsonSerializer()
    except ImportError:  # no orjson (Splunk's Python): the client's json serializer
        pass
    kwargs["serializers"] = serializers
    if options["cloud_id"]:
        kwargs["cloud_id"] = options["cloud_id"]
        return Elasticsearch(**kwargs)
    return Elasticsearch(options["hosts"], **kwargs)


@contextmanager
def translated(what: str, error: type[Exception] = SinkError) -> Iterator[None]:
    """Turn the client's exceptions into one-line forwarder errors naming ``what``."""
    from elastic_transport import SerializationError, TransportError
    from elasticsearch import ApiError, UnsupportedProductError

    try:
        yield
    except UnsupportedProductError:
        raise error(f"{what}: the server is not Elasticsearch (no X-Elastic-Product header)") from None
    except ApiError as exc:
        status = exc.meta.status
        detail = _reason(exc.body)
        if status in (401, 403):
            raise AuthError(what, "request to", _node_url(exc), status, detail) from None
        raise error(f"{what}: HTTP {status}: {detail}{_advice(exc.body)}") from None
    except SerializationError as exc:
        raise error(f"{what}: Elasticsearch answered a body that is not valid JSON: {redact(str(exc))[:120]}") from None
    except TransportError as exc:
        raise error(f"{what}: {_unreachable(exc)}") from None


def _all_created(items: list[Any]) -> bool:
    """Whether every bulk item reads exactly ``{"create": {"status": 201}}``: created, not in the failure store.

    The common answer, checked without running Python code per item: ``list.count``
    compares the items with dict equality in C. ``errors: false`` alone is not
    enough: a document diverted to the failure store is a 201 too. Anything else
    (a failure, a 409, ``failure_store``) goes item by item.
    """
    return items.count(_CREATED) == len(items)


def _unreachable(exc: Exception) -> str:
    """Why no node answered, from the transport's message (its ``str`` is only "TLS error" or "Connection error")."""
    return f"cannot reach Elasticsearch: {exc}: {innermost_reason(Exception(getattr(exc, 'message', exc)))}"


def _node_url(exc: Any) -> str:
    """The URL of the node that answered ``exc`` (no credentials, no query)."""
    node = getattr(exc.meta, "node", None)
    if node is None:
        return "elasticsearch"
    return safe_url(f"{node.scheme}://{node.host}:{node.port}{node.path_prefix}")


def _reason(error: Any) -> str:
    """``type: reason (caused by: …)`` of an Elasticsearch error object or error response."""
    if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
        error = error["error"]
    if isinstance(error, str):
        return redact(error)[:300]
    if not isinstance(error, dict):
        return redact(str(error))[:300] if error else "no reason given"
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type', '?')}: {cause.get('reason', '')})"
    return redact(text)[:500]


def _advice(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "media_type_header_exception":
        return (" (this Elasticsearch refuses the client's compatibility header: the forwarder needs Elasticsearch 8.13+ or 9.x"
                " and the Python package elasticsearch>=8.13,<9, which speaks to both)")
    return ""


def setup(config: Config, sink_name: str | None = None) -> list[str]:
    """``siem-forwarder setup elasticsearch``: install templates and ILM through each elasticsearch sink."""
    sinks = [s for s in config.sinks if s.type == ElasticsearchSink.TYPE and (sink_name is None or s.name == sink_name)]
    if not sinks:
        which = f"named {sink_name!r} " if sink_name else ""
        raise ConfigError("sink", f"no elasticsearch sink {which}is configured")
    lines: list[str] = []
    for cfg in sinks:
        client = build_client(cfg.options, cfg.http, f"setup of sink {cfg.name}")
        try:
            with translated(f"setup of sink {cfg.name}", SetupError):
                o = cfg.options
                try:
                    done = install(client, namespace=o["namespace"], retention=o["retention"],
                                   rollover_max_age=o["rollover_max_age"],
                                   rollover_max_primary_shard_size=o["rollover_max_primary_shard_size"],
                                   lifecycle=o["lifecycle"])
                except RuntimeError as exc:
                    raise SetupError(f"setup of sink {cfg.name}: {exc}") from None
            lines.extend(f"sink {cfg.name}: {line}" for line in done)
        finally:
            client.close()
    return lines
