"""The add-on as a Splunk admin deploys it: manifest workloads, README install matrix and troubleshooting."""

from __future__ import annotations

import json
import re
from pathlib import Path

from forwarder.splunk_addon import log_name
from forwarder.splunk_event import SOURCETYPES, rename_stanzas

PACKAGE = Path(__file__).resolve().parent.parent / "splunk_app" / "package"
README = (PACKAGE / "README.txt").read_text(encoding="utf-8")


def test_manifest_targets_the_forwarders_that_run_the_inputs():
    manifest = json.loads((PACKAGE / "app.manifest").read_text(encoding="utf-8"))
    assert set(manifest["targetWorkloads"]) == {"_search_heads", "_indexers", "_forwarders"}


def test_readme_gives_the_install_matrix():
    matrix = README.split("Where to install", 1)[1].split("Set-up", 1)[0]
    rows = {name: re.search(rf"^  {re.escape(name)}\S*(?: \S+)*\s{{2,}}(yes|no)\b", matrix, re.M) for name in
            ("Heavy forwarder", "Search heads", "Indexers", "Universal forwarder")}
    assert {name: m.group(1) if m else None for name, m in rows.items()} == {
        "Heavy forwarder": "yes", "Search heads": "yes", "Indexers": "yes", "Universal forwarder": "no"}


def test_readme_troubleshooting_points_at_the_real_log_files():
    trouble = README.split("Troubleshooting", 1)[1]
    assert log_name("prod") == "prod" and log_name("a b/c") == "a_b_c"  # solnlib: ta_siem_forwarder_<log name>.log
    assert "$SPLUNK_HOME/var/log/splunk/ta_siem_forwarder_<input>.log" in trouble
    assert "index=_internal source=*ta_siem_forwarder_*.log" in trouble


def test_readme_rename_example_is_what_check_prints():
    example = re.search(r"^  \[crusoe:audit:custom\]\n  rename = \S+$", README, re.M)
    printed = rename_stanzas({"crusoe": "crusoe:audit:custom"})
    assert example and [line.strip() for line in example.group().splitlines()] == printed.strip().splitlines()
    assert "crusoe:cloud:audit" in SOURCETYPES.values()
