"""Engine glue for the Splunk add-on (``splunk_app/``): the same engine, run as a modular input.

splunkd starts one input script per input every ``interval`` seconds; the
script (``splunk_app/package/bin/siem_forwarder_input.py``) reads the account
and settings from Splunk and calls ``run_input`` here, which runs one pass of
the vendor source through the ordinary ``Pipeline`` into an ``EventWriterSink``.

- **Events**: ``EventWriterSink`` writes each event with splunklib's
  ``EventWriter`` using ``forwarder.splunk_event.hec_event`` — the function the
  HEC sink uses — so the event JSON, ``time`` and sourcetype are the same either
  way and one set of add-on knowledge objects applies to both.
- **Checkpoints**: ``SplunkCheckpointStore`` keeps each input's cursor in the KV
  store collection ``ta_siem_forwarder_checkpoints`` (``_key``
  ``<vendor>:<input>``, ``state`` = JSON, the layout solnlib's
  ``KVStoreCheckpointer`` uses) and falls back to a file in the input's
  ``checkpoint_dir`` when the KV store cannot be reached. Every record carries
  its write time, and a read takes the newer of the two places, so a run that
  had to fall back is not undone by an older KV store document. The pipeline
  commits a cursor only after ``EventWriter`` has written the events before it.
- **Accounts**: saving an account in the add-on's pages runs ``check_account``
  first (UCC custom REST handler ``bin/siem_forwarder_account.py``): the probe
  ``siem-forwarder check`` runs (``runner.check``: a token and a one-record read,
  never a Carbon Black queue read), so a wrong secret is refused in the UI with
  the vendor's reason instead of failing the first scheduled run.
- **Options**: Splunk hands every setting over as a string; ``source_table``
  turns the account and input fields into a ``[[source]]`` table of the right
  types (secrets become ``Secret``) and the ordinary config validation checks
  it, so the add-on accepts exactly what the TOML file accepts.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import quote, urlsplit

from urllib3.exceptions import InsecureRequestWarning

from forwarder import jsoncodec, registry, runner
from forwarder.config import SinkConfig, SourceConfig, parse_config
from forwarder.deadletter import DeadLetters
from forwarder.durable import fsync_dir
from forwarder.errors import ConfigError, ForwarderError, SinkError, SourceError, StateError
from forwarder.event import AuditEvent
from forwarder.http import HttpClient, HttpSettings
from forwarder.options import Option
from forwarder.pipeline import PassResult, Pipeline, describe, window_for
from forwarder.secrets import Secret, register
from forwarder.sinks.base import Rejected, Sink
from forwarder.splunk_event import hec_event
from forwarder.state import LEDGER_RETENTION, LedgerEntry
from forwarder.timeutil import format_time, now, parse_duration, parse_time

log = logging.getLogger("forwarder.splunk_addon")

APP = "TA_siem_forwarder"
CONF_PREFIX = APP.lower()
COLLECTION = f"{CONF_PREFIX}_checkpoints"
SETTINGS_CONF = f"{CONF_PREFIX}_settings"
#: What UCC's REST handlers show (and send back on an edit) in place of a stored secret.
MASKED = "******"


@dataclass(frozen=True)
class AddonInput:
    """One modular input type: its scheme, the engine source type, and its account tab."""

    scheme: str
    source_type: str
    account_tab: str

    @property
    def account_conf(self) -> str:
        """The conf file UCC keeps these accounts in."""
        return f"{CONF_PREFIX}_{self.account_tab}"


INPUTS: dict[str, AddonInput] = {
    spec.scheme: spec
    for spec in (
        AddonInput("hpe_greenlake_audit", "hpe_greenlake", "hpe_greenlake_account"),
        AddonInput("crusoe_audit", "crusoe", "crusoe_account"),
        AddonInput("progress_mft_audit", "progress_mft", "progress_mft_account"),
        AddonInput("carbon_black_cloud_audit", "carbon_black_cloud", "carbon_black_cloud_account"),
    )
}

#: Input fields the add-on itself handles (the rest must be options of the source).
INPUT_FIELDS = ("name", "interval", "index", "account", "start", "lag")
DEFAULT_START = "1d"
DEFAULT_LAG = "2m"

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


# -- options ------------------------------------------------------------------
def source_class(spec: AddonInput) -> Any:
    """The engine's source class, or a ``ConfigError`` naming a missing Python package."""
    try:
        return registry.load("source", spec.source_type)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            spec.scheme,
            f"this input needs the Python package {exc.name!r}, which Splunk's Python does not provide here "
            "(see the add-on's README: Progress Automate MFT needs 'cryptography')",
        ) from None


def from_splunk(value: str, opt: Option, key: str) -> Any:
    """A Splunk string setting converted to what ``opt`` expects (validation happens later)."""
    kind = opt.kind
    if kind == "secret":
        return Secret(value)
    text = value.strip()
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(key, f"must be true or false, not {text[:20]!r}")
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ConfigError(key, f"must be a {'whole ' if kind == 'int' else ''}number, not {text[:20]!r}") from None
    if kind == "list":
        return [part.strip() for part in re.split(r"[,|\n]", text) if part.strip()]
    if kind == "dict":
        try:
            parsed = jsoncodec.loads(text)
        except ValueError:
            raise ConfigError(key, "must be a JSON object, e.g. {\"key\": \"value\"}") from None
        if not isinstance(parsed, dict):
            raise ConfigError(key, "must be a JSON object, e.g. {\"key\": \"value\"}")
        return parsed
    return text


def lookback_seconds(start: str | None, at: dt.datetime) -> float:
    """The ``start`` field as a look-back: a duration (``7d``) or a time (``2026-01-01T00:00:00Z``)."""
    text = (start or DEFAULT_START).strip()
    try:
        return parse_duration(text)
    except ValueError:
        pass
    try:
        when = parse_time(text)
    except ValueError:
        raise ConfigError("start", f"must be a look-back such as 12h or 7d, or a time such as 2026-01-01T00:00:00Z, not {text[:40]!r}") from None
    return max(0.0, (at - when).total_seconds())


def source_table(
    spec: AddonInput, name: str, params: dict[str, Any], account: dict[str, Any], proxy: str | None = None
) -> dict[str, Any]:
    """The ``[[source]]`` table an input stanza and its account stand for."""
    options: dict[str, Option] = source_class(spec).OPTIONS
    table: dict[str, Any] = {
        "name": name,
        "type": spec.source_type,
        "lag": (params.get("lag") or DEFAULT_LAG).strip(),
        "lookback": lookback_seconds(params.get("start"), now()),
        "http": {"proxy": proxy} if proxy else {},
    }
    for fields in (account, params):
        for key, value in fields.items():
            if key in options and isinstance(value, str) and value != "":
                table[key] = from_splunk(value, options[key], key)
    return table


def source_config(spec: AddonInput, name: str, params: dict[str, Any], account: dict[str, Any], proxy: str | None = None) -> SourceConfig:
    """Validate an input and its account exactly as the TOML config would be; ``ConfigError`` names the field."""
    return parse_config({"source": [source_table(spec, name, params, account, proxy)]}).sources[0]


def input_for_account(tab: str) -> AddonInput:
    """The input type whose accounts live in the configuration tab ``tab``."""
    for spec in INPUTS.values():
        if spec.account_tab == tab:
            return spec
    raise ConfigError("account", f"unknown account type {tab!r}")


def account_to_check(submitted: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The account a save would store: on an edit, fields left masked or out keep their stored value."""
    account = dict(stored or {})
    account.update({k: v for k, v in submitted.items() if v != MASKED})
    return account


def check_account(spec: AddonInput, name: str, account: dict[str, Any], proxy: str | None = None) -> str:
    """Validate an account and run the probe ``siem-forwarder check`` runs; its line, or the failure.

    Raises ``ConfigError`` naming a bad field, or ``SourceError`` with the check's line
    (the vendor's reason) when the vendor refuses. Nothing is consumed or stored.
    """
    table = source_table(spec, name, {}, account, proxy)
    with tempfile.TemporaryDirectory(prefix="siem-forwarder-check-") as scratch:
        config = parse_config({"state": {"dir": scratch}, "source": [table]})
        ((_, ok, line),) = runner.check(config)
    if not ok:
        raise SourceError(line)
    return line


def proxy_url(settings: dict[str, Any]) -> str | None:
    """The proxy URL of UCC's proxy tab (``proxy_*`` fields), or None when it is off."""
    if str(settings.get("proxy_enabled", "")).strip().lower() not in _TRUE:
        return None
    host = str(settings.get("proxy_url") or "").strip()
    if not host:
        raise ConfigError("proxy_url", "is required when the proxy is enabled")
    kind = str(settings.get("proxy_type") or "http").strip().lower()
    rdns = str(settings.get("proxy_rdns", "")).strip().lower() in _TRUE
    scheme = {"http": "http", "socks4": "socks4a" if rdns else "socks4", "socks5": "socks5h" if rdns else "socks5"}.get(kind)
    if scheme is None:
        raise ConfigError("proxy_type", f"must be http, socks4 or socks5, not {kind[:20]!r}")
    port = str(settings.get("proxy_port") or "").strip()
    netloc = f"{host}:{port}" if port else host
    user, password = settings.get("proxy_username"), settings.get("proxy_password")
    if user:
        creds = quote(str(user), safe="")
        if password:
            register(str(password))
            quoted = quote(str(password), safe="")
            register(quoted)
            creds += ":" + quoted
        netloc = f"{creds}@{netloc}"
    return f"{scheme}://{netloc}"


# -- checkpoints --------------------------------------------------------------
class DocumentStore(Protocol):
    """Keyed JSON documents: the KV store collection or the fallback directory."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, state: dict[str, Any]) -> None: ...


class KVStoreDocuments:
    """Documents ``{"_key", "state": <JSON text>}`` of one KV store collection, over splunkd's REST API."""

    def __init__(self, server_uri: str, session_key: str, collection: str = COLLECTION, app: str = APP, timeout: float = 30.0) -> None:
        base = server_uri.rstrip("/")
        self.url = f"{base}/servicesNS/nobody/{quote(app, safe='')}/storage/collections/data/{quote(collection, safe='')}"
        # splunkd's own certificate is usually self-signed; this only ever talks to the local splunkd.
        # Without the filter urllib3 warns on every request, and standard error goes to splunkd.log.
        host = re.escape(urlsplit(base).hostname or "")
        warnings.filterwarnings("ignore", f"Unverified HTTPS request is being made to host '{host}'", InsecureRequestWarning)
        self.client = HttpClient("splunk kv store", HttpSettings(timeout=timeout, verify=False, retries=2, backoff_base=0.2))
        self.client.session.trust_env = False  # never send the session key through a proxy
        self.client.session.headers["Authorization"] = f"Splunk {session_key}"
        register(session_key)

    def get(self, key: str) -> dict[str, Any] | None:
        """The document's state, or None when there is none."""
        resp = self.client.request("GET", f"{self.url}/{quote(key, safe='')}", ok=(200, 404), params={"output_mode": "json"})
        if resp.status_code == 404:
            return None
        try:
            return jsoncodec.loads(jsoncodec.loads(resp.content)["state"])
        except (ValueError, KeyError, TypeError):
            raise StateError(f"kv store {COLLECTION}: document {key!r} is not a checkpoint") from None

    def put(self, key: str, state: dict[str, Any]) -> None:
        """Insert or replace the document (``batch_save`` upserts by ``_key``)."""
        body = jsoncodec.dumps([{"_key": key, "state": jsoncodec.dumps_str(state)}])
        self.client.request("POST", f"{self.url}/batch_save", data=body, headers={"Content-Type": "application/json"})

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()


class FileDocuments:
    """One JSON file per key in a directory, replaced atomically and fsynced."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def _path(self, key: str) -> Path:
        return self.dir / (quote(key, safe="") + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored state, or None."""
        path = self._path(key)
        try:
            return jsoncodec.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"checkpoint file {path}: cannot read it: {exc}") from None

    def put(self, key: str, state: dict[str, Any]) -> None:
        """Write to a temporary file, fsync, rename over the old one."""
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(jsoncodec.dumps(state))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fsync_dir(self.dir)
        except OSError as exc:
            raise StateError(f"checkpoint file {path}: cannot write it: {exc}") from None


class SplunkCheckpointStore:
    """The ``CheckpointStore`` of the add-on: KV store first, checkpoint-dir files as the fallback.

    Keys are ``<prefix>:<name>`` (``<vendor>:<input>``), scratch records
    ``<prefix>:<name>:scratch``. ``kv`` is None when the KV store is not usable
    at all; a KV store failure during the run switches this store to the files
    for the rest of the run (with one warning).
    """

    def __init__(self, prefix: str, files: DocumentStore, kv: DocumentStore | None = None) -> None:
        self.prefix = prefix
        self.files = files
        self.kv = kv
        self._lock = threading.Lock()

    def _key(self, name: str, scratch: bool = False) -> str:
        return f"{self.prefix}:{name}" + (":scratch" if scratch else "")

    def _read(self, key: str) -> dict[str, Any] | None:
        found = [self.files.get(key)]
        if self.kv is not None:
            try:
                found.append(self.kv.get(key))
            except ForwarderError as exc:
                self._fall_back(exc)
        found = [doc for doc in found if doc]
        return max(found, key=lambda doc: doc.get("updated_at", "")) if found else None

    def _write(self, key: str, doc: dict[str, Any]) -> None:
        doc = {**doc, "updated_at": format_time(now(), 6)}
        if self.kv is not None:
            try:
                self.kv.put(key, doc)
                return
            except ForwarderError as exc:
                self._fall_back(exc)
        self.files.put(key, doc)

    def _fall_back(self, exc: ForwarderError) -> None:
        log.warning("KV store unavailable (%s); checkpoints go to the input's checkpoint directory", exc)
        self.kv = None

    def get(self, name: str) -> dict[str, Any] | None:
        """The newest stored cursor of ``name``."""
        with self._lock:
            doc = self._read(self._key(name))
        return doc.get("cursor") if doc else None

    def commit(self, name: str, cursor: dict[str, Any], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Store ``cursor`` for ``name``, with the ledger entries it closes in the same document.

        The KV store has no transactions across documents: the ledger of a source
        is one document written right after the cursor's, so a crash between the
        two shows as a gap in ``coverage`` (never as coverage that is not there).
        """
        with self._lock:
            self._write(self._key(name), {"cursor": cursor})
            for source in sorted({e.source for e in ledger}):
                key = f"{self._key(source)}:ledger"
                cutoff = format_time(now() - dt.timedelta(seconds=LEDGER_RETENTION), 6)
                kept = {(d["start"], d["end"]): d for d in (self._read(key) or {}).get("entries", []) if d["end"] >= cutoff}
                for e in ledger:
                    if e.source == source:
                        kept[(format_time(e.start, 6), format_time(e.end, 6))] = _ledger_doc(e)
                self._write(key, {"entries": sorted(kept.values(), key=lambda d: (d["start"], d["end"]))})

    def ledger(self, source: str) -> list[LedgerEntry]:
        """The ledger entries of ``source``, oldest window first."""
        with self._lock:
            doc = self._read(f"{self._key(source)}:ledger") or {}
        return [
            LedgerEntry(source, parse_time(d["start"]), parse_time(d["end"]), d["read"], d["delivered"], d["dead"],
                        d.get("vendor_count"), parse_time(d["committed_at"]))
            for d in doc.get("entries", [])
        ]

    def scratch_get(self, name: str) -> dict[str, Any]:
        """All scratch values of ``name``."""
        with self._lock:
            doc = self._read(self._key(name, True))
        return dict(doc.get("values", {})) if doc else {}

    def scratch_put(self, name: str, key: str, value: Any) -> None:
        """Durably remember one scratch value."""
        with self._lock:
            doc = self._read(self._key(name, True)) or {}
            self._write(self._key(name, True), {"values": {**doc.get("values", {}), key: value}})

    def scratch_delete(self, name: str, key: str) -> None:
        """Forget one scratch value."""
        with self._lock:
            doc = self._read(self._key(name, True)) or {}
            values = {k: v for k, v in doc.get("values", {}).items() if k != key}
            self._write(self._key(name, True), {"values": values})


def _ledger_doc(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "start": format_time(entry.start, 6), "end": format_time(entry.end, 6), "read": entry.read,
        "delivered": entry.delivered, "dead": entry.dead, "vendor_count": entry.vendor_count,
        "committed_at": format_time(now(), 6),
    }


# -- events -------------------------------------------------------------------
class EventWriterSink(Sink):
    """Writes events through splunklib's ``EventWriter`` (the modular input's stdout to splunkd).

    ``write_event`` returns once the XML is flushed to splunkd, which is when an
    event counts as delivered; the pipeline commits the checkpoint after that.
    """

    TYPE = "splunk_event_writer"

    def __init__(self, writer: Any, *, stanza: str, index: str | None, host: str | None = None) -> None:
        super().__init__(SinkConfig(name="splunk", type=self.TYPE, batch_events=5000, batch_age=0.0, http=HttpSettings()))
        from splunklib.modularinput import Event  # splunk-sdk: bundled in the add-on, a dependency of the package

        self._event = Event
        self.writer = writer
        self.stanza = stanza
        self.index = index or None
        self.host = host or None

    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Write every event; an I/O failure raises (nothing of the batch counts as delivered)."""
        try:
            for event in events:
                env = hec_event(event, index=self.index, host=self.host, source=None)
                self.writer.write_event(
                    self._event(
                        data=jsoncodec.dumps_str(env["event"]),
                        time=env["time"],
                        sourcetype=env["sourcetype"],
                        index=env.get("index"),
                        host=env.get("host"),
                        stanza=self.stanza,
                        unbroken=True,
                        done=True,
                    )
                )
        except (OSError, ValueError) as exc:
            raise SinkError(f"splunk event writer: cannot write to splunkd: {exc}") from None
        return []


# -- one run ------------------------------------------------------------------
@dataclass
class InputRun:
    """Everything one run of one input needs, gathered from splunkd by the input script."""

    spec: AddonInput
    name: str
    params: dict[str, Any]
    account: dict[str, Any]
    checkpoint_dir: Path
    kv: DocumentStore | None
    proxy: str | None = None


def state_dir(checkpoint_dir: str | Path, name: str) -> Path:
    """Per-input directory under splunkd's checkpoint dir: fallback checkpoints, dead letters, spools."""
    return Path(checkpoint_dir) / quote(name, safe="")


def run_input(run: InputRun, writer: Any, *, clock: Callable[[], dt.datetime] = now) -> PassResult:
    """One pass of the input's source into ``writer``; the result says what happened (never raises ForwarderError)."""
    cfg = source_config(run.spec, run.name, run.params, run.account, run.proxy)
    directory = state_dir(run.checkpoint_dir, run.name)
    vendor = source_class(run.spec).VENDOR
    store = SplunkCheckpointStore(vendor, FileDocuments(directory / "checkpoints"), run.kv)
    sink = EventWriterSink(writer, stanza=f"{run.spec.scheme}://{run.name}", index=run.params.get("index"))
    pipeline = Pipeline([sink], store, DeadLetters(directory))
    source = registry.load("source", cfg.type)(cfg, store, directory)
    try:
        start, end = window_for(cfg, clock())
        result = pipeline.run_pass(source, start, end)
    finally:
        source.close()
        pipeline.close()
    (log.error if result.error else log.info)("%s", describe(result))
    if result.dead_letters:
        log.warning("%d records dead-lettered to %s", result.dead_letters, directory / "deadletter.ndjson")
    return result


def log_name(name: str) -> str:
    """The input's log name: solnlib writes ``$SPLUNK_HOME/var/log/splunk/ta_siem_forwarder_<log name>.log``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)

