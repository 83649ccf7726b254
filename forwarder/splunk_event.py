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
"""

from __future__ import annotations

from typing import Any

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
    if host:
        envelope["host"] = host
    if source:
        envelope["source"] = source
    envelope["sourcetype"] = sourcetype or sourcetype_for(event)
    if index:
        envelope["index"] = index
    envelope["event"] = event.to_dict()
    return envelope
