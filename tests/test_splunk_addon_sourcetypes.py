"""HEC ``sourcetypes`` overrides keep the add-on's CIM mapping through a props.conf rename, or are refused.

The rename stanzas ``check`` prints are parsed with UCC's conf parser and applied the way
Splunk applies ``rename`` at search time (the events take the target sourcetype and its
knowledge); the events then land in the same CIM eventtypes as under our own sourcetype.
"""

from __future__ import annotations

import importlib.util

import pytest

from forwarder.config import parse_config
from forwarder.errors import ConfigError
from forwarder.splunk_event import SOURCETYPES, override_problem, rename_stanzas
from tests.test_splunk_addon_cim import apply_props, confs, data_models, search_matches, toolchain_site, vendor_events  # noqa: F401

HEC = {"name": "s", "type": "splunk_hec", "url": "https://s:8088", "token": "env:HEC_TOKEN"}


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("HEC_TOKEN", "3f8a1b2c-0000-4000-8000-000000000001")


@pytest.mark.parametrize("overrides, words", [
    ({"crusoe": "audit:json", "hpe_greenlake": "audit:json"}, "each vendor needs its own name"),
    ({"crusoe.audit": "x", "carbon_black_cloud": "x"}, "each vendor needs its own name"),
    ({"cruso": "crusoe:custom"}, "not a vendor or dataset"),
    ({"crusoe": "my sourcetype"}, "without spaces"),
])
def test_overrides_that_would_lose_the_cim_mapping_are_refused(overrides, words):
    with pytest.raises(ConfigError) as info:
        parse_config({"sink": [{**HEC, "sourcetypes": overrides}]})
    assert 'sink "s".sourcetypes' in str(info.value) and words in str(info.value)


def test_a_dataset_key_beats_its_vendor_key_and_our_own_names_need_no_rename():
    overrides = {"crusoe": "crusoe:custom", "crusoe.audit": "crusoe:cloud:audit"}
    assert override_problem(overrides) is None
    assert rename_stanzas(overrides) == ""


def test_rename_stanzas_give_overridden_sourcetypes_the_same_cim_eventtypes(toolchain_site, confs, vendor_events, tmp_path):
    overrides = {"carbon_black_cloud": "cbc:json", "hpe_greenlake.audit": "glp", "crusoe": "crusoe:custom"}
    assert override_problem(overrides) is None
    local = tmp_path / "props.conf"
    local.write_text(rename_stanzas(overrides))
    spec = importlib.util.spec_from_file_location("conf_parser", toolchain_site / "addonfactory_splunk_conf_parser_lib.py")
    parser_lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parser_lib)
    parser = parser_lib.TABConfigParser()
    parser.read(str(local))
    renames = {section: dict(parser.items(section))["rename"] for section in parser.sections()}
    assert renames == {"cbc:json": "vmware:cbc:audit", "glp": "hpe:greenlake:audit", "crusoe:custom": "crusoe:cloud:audit"}
    eventtypes = {name: s["search"] for name, s in confs["eventtypes"].items()}
    for custom, ours in renames.items():
        assert ours in confs["props"] and ours in SOURCETYPES.values()
        for raw in vendor_events[ours]:
            as_ours = apply_props(raw, confs["props"][ours])
            renamed = apply_props({**raw, "sourcetype": renames[custom]}, confs["props"][renames[custom]])  # what rename does
            assert [n for n in eventtypes if search_matches(eventtypes[n], renamed, eventtypes)] == \
                [n for n in eventtypes if search_matches(eventtypes[n], as_ours, eventtypes)]
