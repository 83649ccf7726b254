"""The Splunk event envelope: the one place an ``AuditEvent`` becomes a Splunk event.

Both ways into Splunk use it — the HEC sink (``forwarder/sinks/splunk_hec.py``)
and the add-on's modular input (splunklib ``EventWriter``) — so the same JSON
and the same sourcetype reach the index either way, and one set of add-on
knowledge objects maps both to CIM.

Sourcetypes, one per vendor stream (``<vendor>:<product>:audit``), keyed by
``AuditEvent.dataset``:

==============================  ============================
dataset                         sourcetype
==============================  ============================
``hpe_greenlake.audit``         ``hpe:greenlake:audit``
``crusoe.audit``                ``crusoe:cloud:audit``
``progress_mft.audit``          ``progress:mft:audit``
``carbon_black_cloud.audit``    ``vmware:cbc:audit``
==============================  ============================

A stream not in the table gets ``<vendor>:<product>`` (the dataset with ``:``
for ``.``), so a new vendor is never silently merged into another one's
sourcetype. Users override per vendor in the sink's config.

The add-on's CIM knowledge (props, eventtypes, tags) is written for these names.
An overridden name gets it through Splunk's search-time ``rename`` in the
add-on's ``local/props.conf`` (``[<custom>]`` / ``rename = <ours>``:
``rename_stanzas`` writes them), which makes the events searchable as
``sourcetype=<ours>`` with our knowledge while ``_sourcetype`` keeps the custom
name. That is why two vendors can never share one custom sourcetype: one name
cannot be renamed to two (``override_problem`` refuses it).
"""

from __future__ import annotations

from typing import Any

from forwarder import jsoncodec
from forwarder.event import AuditEvent
from forwarder.timeutil import epoch_seconds

SOURCETYPES: dict[str, str] = {
    "hpe_greenlake.audit": "hpe:greenlake:audit",
    "crusoe.audit": "crusoe:cloud:audit",
    "progress_mft.audit": "progress:mft:audit",
    "carbon_black_cloud.audit": "vmware:cbc:audit",
}


def sourcetype_for(event: AuditEvent) -> str:
    """The sourcetype of the event's vendor stream (see the table above)."""
    dataset = event.dataset
    return SOURCETYPES.get(dataset) or dataset.replace(".", ":")


def _datasets_of(key: str) -> list[str]:
    """The known datasets a ``sourcetypes`` key names: a dataset, or every dataset of a vendor."""
    return [d for d in SOURCETYPES if key in (d, d.split(".", 1)[0])]


def override_problem(overrides: dict[str, str]) -> str | None:
    """Why a ``sourcetypes`` table cannot keep the add-on's CIM mapping, or None."""
    taken: dict[str, str] = {}
    for key, custom in overrides.items():
        if not _datasets_of(key):
            known = sorted({d.split(".", 1)[0] for d in SOURCETYPES} | set(SOURCETYPES))
            return f"{key}: not a vendor or dataset (known: {', '.join(known)})"
        if not isinstance(custom, str) or not custom or any(c.isspace() or c in "[]" for c in custom):
            return f"{key}: must map to a non-empty sourcetype name without spaces or brackets"
        for dataset in _datasets_of(key):
            if overrides.get(dataset, custom) != custom:
                continue  # a dataset key beats its vendor's key
            other = taken.setdefault(custom, dataset)
            if other != dataset:
                return (f"{key}: {custom!r} is already the sourcetype of {other}; the add-on's CIM knowledge is per vendor "
                        "sourcetype (a custom name reaches it by one props.conf rename), so each vendor needs its own name")
    return None


def rename_stanzas(overrides: dict[str, str]) -> str:
    """The ``local/props.conf`` stanzas that give overridden sourcetypes the add-on's CIM knowledge."""
    renames: dict[str, str] = {}
    for key, custom in overrides.items():
        for dataset in _datasets_of(key):
            if overrides.get(dataset, custom) == custom and custom != SOURCETYPES[dataset]:
                renames[custom] = SOURCETYPES[dataset]
    return "".join(f"[{custom}]\nrename = {ours}\n\n" for custom, ours in renames.items())


def hec_event(
    event: AuditEvent,
    *,
    index: str | None,
    host: str | None,
    source: str | None,
    sourcetype: str | None = None,
) -> dict[str, Any]:
    """The HEC envelope for one event: ``time``, metadata and the normalized event.

    ``time`` is epoch seconds with millisecond precision. A metadata value of
    ``None`` is left out so Splunk applies the token's default. Only the six
    documented keys are ever emitted: Splunk silently drops the rest of a batch
    after an object with an unknown top-level key.
    """
    envelope: dict[str, Any] = {"time": epoch_seconds(event.timestamp)}
    envelope.update(_metadata(index=index, host=host, source=source, sourcetype=sourcetype or sourcetype_for(event)))
    envelope["event"] = event.to_dict()
    return envelope


def hec_metadata(*, index: str | None, host: str | None, source: str | None, sourcetype: str) -> bytes:
    """The envelope's metadata members as JSON bytes, each followed by a comma.

    The same for every event of a sourcetype, so a sink computes it once and
    ``hec_line`` splices it in; key order and omissions are ``hec_event``'s.
    """
    return jsoncodec.dumps(_metadata(index=index, host=host, source=source, sourcetype=sourcetype))[1:-1] + b","


def _metadata(*, index: str | None, host: str | None, source: str | None, sourcetype: str) -> dict[str, str]:
    """The envelope's metadata in HEC's order; a ``None`` or empty value is left out (the token's default applies)."""
    meta = {"host": host, "source": source, "sourcetype": sourcetype, "index": index}
    return {key: value for key, value in meta.items() if value}


def hec_line(event: AuditEvent, metadata: bytes) -> bytes:
    """``jsoncodec.dumps(hec_event(...))`` without building the envelope dict.

    ``metadata`` is ``hec_metadata(...)`` for the event's sourcetype. The float
    ``time`` and the event body go through the same encoder as the envelope would,
    so the bytes are identical (tests/test_splunk_hec_envelope.py proves it).
    """
    dumps = jsoncodec.dumps
    return b'{"time":%b,%b"event":%b}' % (dumps(epoch_seconds(event.timestamp)), metadata, dumps(event.to_dict()))
