"""Saving an account in the add-on runs the check the command line runs, and a refusal reaches the page.

Engine level: ``check_account`` against the vendor simulators. Handler level: the built
add-on's ``AccountHandler`` (what UCC's generated account REST handlers call) run with
``python -S`` and only the add-on's ``lib/`` and ``bin/`` on the path, splunkd's Python
``splunk.admin`` replaced by a stub module, and the splunkd stub for the proxy settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from forwarder.errors import ConfigError, SourceError
from forwarder.simulators.carbon_black_cloud import DEMO_API_ID, DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.splunk_addon import INPUTS, MASKED, account_to_check, check_account, input_for_account
from tests.test_splunk_addon_package import addon, stub  # noqa: F401  (the built add-on, once per session; the splunkd stub)

CB = INPUTS["carbon_black_cloud_audit"]


@pytest.fixture
def cbc():
    with CarbonBlackCloudSimulator(seed=7) as sim:
        yield sim


def cb_account(sim, secret=DEMO_SECRET):
    return {"base_url": sim.url, "org_key": sim.org_key, "api_id": DEMO_API_ID, "api_secret": secret}


def test_a_working_account_passes_the_cli_check_without_touching_the_queue(cbc):
    queue = cbc.queue_position(DEMO_API_ID)
    line = check_account(CB, "prod", cb_account(cbc))
    assert "audit log search works" in line and "queue was not read" in line
    assert cbc.queue_position(DEMO_API_ID) == queue


def test_a_wrong_secret_is_refused_with_the_vendors_answer(cbc):
    with pytest.raises(SourceError) as info:
        check_account(CB, "prod", cb_account(cbc, secret="not-the-secret"))
    text = str(info.value)
    assert "401" in text or "403" in text
    assert "not-the-secret" not in text


def test_a_bad_field_names_the_field(cbc):
    with pytest.raises(ConfigError, match="org_key"):
        check_account(CB, "prod", {**cb_account(cbc), "org_key": "not a key!"})


def test_an_edit_checks_the_stored_secret_when_the_page_sends_it_masked():
    stored = {"org_key": "A", "api_id": "I", "api_secret": "s3cret"}
    assert account_to_check({"org_key": "B", "api_secret": MASKED}, stored) == {"org_key": "B", "api_id": "I", "api_secret": "s3cret"}
    assert account_to_check({"api_secret": "new"}, None) == {"api_secret": "new"}
    assert input_for_account("carbon_black_cloud_account") is CB


# -- the REST handler in the built add-on -------------------------------------------------------
STUB_ADMIN = '''
ACTION_CREATE, ACTION_EDIT, ACTION_LIST, ACTION_REMOVE = 1, 2, 4, 8
CONTEXT_APP_ONLY = 1


class ArgValidationException(Exception):
    pass


class _Args:
    def __init__(self, id, data):
        self.id, self.data = id, {k: [v] for k, v in data.items()}


class MConfigHandler:
    """What splunkd's admin.py gives a handler: the action, the arguments, the session key."""

    def __init__(self, action, id, data, session_key):
        self.requestedAction, self.callerArgs, self._key = action, _Args(id, data), session_key

    def getSessionKey(self):
        return self._key


def init(handler, ctxInfo):
    raise AssertionError("not under splunkd")
'''

# Run from the add-on's bin/: splunktaucclib takes the app name from the script's path.
DRIVER = '''
import json, sys
sys.path[:0] = sys.argv[1:4]
from splunk import admin
from splunktaucclib.rest_handler import admin_external
import TA_siem_forwarder_rh_carbon_black_cloud_account as rh
from siem_forwarder_account import AccountHandler

saved = []
admin_external.AdminExternalHandler.handleCreate = lambda self, conf: saved.append(dict(self.payload))
request = json.loads(sys.argv[4])
handler = type("Handler", (AccountHandler,), {"endpoint": rh.endpoint})(admin.ACTION_CREATE, request["id"], request["data"], request["key"])
try:
    handler.handleCreate({})
    print(json.dumps({"saved": saved}))
except admin.ArgValidationException as exc:
    print(json.dumps({"refused": str(exc), "saved": saved}))
'''


def create_account(addon, tmp_path, stub, data):
    (tmp_path / "stub" / "splunk").mkdir(parents=True)
    (tmp_path / "stub" / "splunk" / "__init__.py").write_text("")
    (tmp_path / "stub" / "splunk" / "admin.py").write_text(textwrap.dedent(STUB_ADMIN))
    request = {"id": "prod", "data": data, "key": stub.session_key}
    app = tmp_path / "etc" / "apps" / addon.name  # where splunkd keeps apps (splunktaucclib reads the app name there)
    app.parent.mkdir(parents=True)
    app.symlink_to(addon)
    driver = app / "bin" / "account_page_driver.py"  # a private copy of the add-on: nothing ships it
    driver.write_text(DRIVER)
    proc = subprocess.run(
        [sys.executable, "-S", str(driver), str(tmp_path / "stub"), str(app / "lib"), str(app / "bin"), json.dumps(request)],
        capture_output=True, text=True, timeout=120, cwd=app / "bin",
        env={"PYTHONDONTWRITEBYTECODE": "1", "SPLUNKD_URI": stub.uri},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def test_the_account_page_refuses_a_wrong_secret_with_the_reason(addon, tmp_path, stub, cbc):
    result, proc = create_account(addon, tmp_path, stub, cb_account(cbc, secret="wrong-secret-value"))
    assert result["saved"] == []
    assert result["refused"].startswith("Account not saved: ")
    assert "401" in result["refused"] or "403" in result["refused"]
    assert "wrong-secret-value" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_account_page_saves_a_working_account(addon, tmp_path, stub, cbc):
    queue = cbc.queue_position(DEMO_API_ID)
    result, _ = create_account(addon, tmp_path, stub, cb_account(cbc))
    assert "refused" not in result and result["saved"] == [cb_account(cbc)]
    assert cbc.queue_position(DEMO_API_ID) == queue
