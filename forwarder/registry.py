"""Names of source, sink and simulator types, imported lazily.

Adding a vendor or a target means adding one line here; nothing else in the
engine lists them.
"""

from __future__ import annotations

import importlib
from typing import Any

from forwarder.errors import ConfigError

SOURCES: dict[str, str] = {
    "carbon_black_cloud": "forwarder.sources.carbon_black_cloud:CarbonBlackCloudSource",
    "crusoe": "forwarder.sources.crusoe:CrusoeSource",
    "hpe_greenlake": "forwarder.sources.hpe_greenlake:GreenLakeSource",
    "progress_mft": "forwarder.sources.progress_mft:ProgressMftSource",
}

SINKS: dict[str, str] = {
    "elasticsearch": "forwarder.sinks.elasticsearch:ElasticsearchSink",
    "file": "forwarder.sinks.file:FileSink",
    "logstash": "forwarder.sinks.logstash:LogstashSink",
    "splunk_hec": "forwarder.sinks.splunk_hec:SplunkHecSink",
}

SIMULATORS: dict[str, str] = {
    "carbon_black_cloud": "forwarder.simulators.carbon_black_cloud:CarbonBlackCloudSimulator",
    "crusoe": "forwarder.simulators.crusoe:CrusoeSimulator",
    "hpe_greenlake": "forwarder.simulators.hpe_greenlake:GreenLakeSimulator",
    "progress_mft": "forwarder.simulators.progress_mft:ProgressMftSimulator",
}


def load(kind: str, name: str) -> Any:
    """Import the class registered as ``name`` in ``kind`` ("source", "sink", "simulator")."""
    table = {"source": SOURCES, "sink": SINKS, "simulator": SIMULATORS}[kind]
    target = table.get(name)
    if target is None:
        known = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"{kind}.type" if kind != "simulator" else "vendor", f"unknown {kind} type {name!r} (known: {known})")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
