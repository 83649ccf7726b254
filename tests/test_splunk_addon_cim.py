"""The add-on's search-time knowledge against the CIM, offline.

Every ``.conf`` file of the add-on is parsed with the conf parser UCC uses
(``addonfactory-splunk-conf-parser-lib``, from the packaging toolchain). Then
real events — each vendor source reading its simulator — are turned into the
JSON Splunk indexes (``hec_event``), flattened as ``KV_MODE = json`` does
(``a.b`` keys, ``a{}`` multivalues, JSON null as the text ``null``, which is the
pessimistic reading), and run through our ``FIELDALIAS``/``EVAL`` settings by a
small interpreter of the eval functions props.conf uses. Each event then gets
the eventtypes whose searches match and their tags, and must carry every field
the data models (pytest-splunk-addon 7.0.5's JSON, not a hand copy) require for
those tags, with the expected values and validity rules.

Not modelled: Splunk's own search parser (only the search forms eventtypes.conf
uses are understood), lookups, and index-time settings.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from forwarder.splunk_addon import INPUTS
from forwarder.splunk_event import hec_event, sourcetype_for
from tests.addon_build import build
from tests.simulated import simulated_events

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "splunk_app" / "package" / "default"
MODELS = ("Change", "Authentication", "Data_Access")


@pytest.fixture(scope="module")
def toolchain_site() -> Path:
    with build.build_lock():
        build.toolchain()
    return next((build.VENV / "lib").glob("python*/site-packages"))


@pytest.fixture(scope="module")
def confs(toolchain_site) -> dict[str, dict[str, dict[str, str]]]:
    spec = importlib.util.spec_from_file_location("addonfactory_splunk_conf_parser_lib", toolchain_site / "addonfactory_splunk_conf_parser_lib.py")
    parser_lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parser_lib)
    parsed = {}
    for path in sorted(DEFAULT.glob("*.conf")):
        parser = parser_lib.TABConfigParser()
        parser.read(str(path))
        parsed[path.stem] = {section: dict(parser.items(section)) for section in parser.sections()}
    return parsed


@pytest.fixture(scope="module")
def data_models(toolchain_site) -> dict[str, Any]:
    base = toolchain_site / "pytest_splunk_addon" / "data_models"
    return {name: json.loads((base / f"{name}.json").read_text()) for name in MODELS}


# -- a small SPL eval interpreter ---------------------------------------------
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<quoted>\'[^\']*\')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|=|<=|>=|<|>|\(|\)|,|\[|\])|(?P<name>[A-Za-z_][\w.{}:]*))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot parse eval near {text[pos:pos + 30]!r}"
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class Eval:
    """Evaluates one eval expression over a field dict (values: str, list of str, or None)."""

    def __init__(self, text: str, single_quotes_are_fields: bool = True) -> None:
        self.toks = _tokens(text)
        self.fields_quoted = single_quotes_are_fields
        self.i = 0
        self.tree = self._or()
        assert self.i == len(self.toks), f"trailing tokens in {text!r}"

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        assert value is None or tok[1].upper() == value.upper(), (tok, value)
        self.i += 1
        return tok

    def _kw(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == "name" and tok[1].upper() == word

    def _or(self):
        node = self._and()
        while self._kw("OR"):
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._not()
        while self._kw("AND"):
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self):
        if self._kw("NOT"):
            self._take()
            return ("not", self._not())
        return self._cmp()

    def _cmp(self):
        node = self._primary()
        tok = self._peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "=", "!=", "<", ">", "<=", ">="):
            self._take()
            node = ("cmp", tok[1], node, self._primary())
        elif self._kw("IN"):
            self._take()
            self._take("[")
            items = [self._primary()]
            while self._peek()[1] == ",":
                self._take()
                items.append(self._primary())
            self._take("]")
            node = ("in", node, items)
        return node

    def _primary(self):
        kind, text = self._take()
        if kind == "str":
            return ("lit", json.loads(text))
        if kind == "quoted":
            return ("field", text[1:-1]) if self.fields_quoted else ("lit", text[1:-1])
        if kind == "num":
            return ("lit", float(text) if "." in text else int(text))
        if text == "(":
            node = self._or()
            self._take(")")
            return node
        if kind == "name":
            nxt = self._peek()
            if nxt and nxt[1] == "(":
                self._take("(")
                args = []
                if self._peek()[1] != ")":
                    args.append(self._or())
                    while self._peek()[1] == ",":
                        self._take()
                        args.append(self._or())
                self._take(")")
                return ("call", text.lower(), args)
            return ("field", text)
        raise AssertionError(f"unexpected token {text!r}")

    def __call__(self, fields: dict[str, Any]) -> Any:
        return self._ev(self.tree, fields)

    def _ev(self, node, f):
        op = node[0]
        if op == "lit":
            return node[1]
        if op == "field":
            return f.get(node[1])
        if op == "and":
            return bool(self._ev(node[1], f)) and bool(self._ev(node[2], f))
        if op == "or":
            return bool(self._ev(node[1], f)) or bool(self._ev(node[2], f))
        if op == "not":
            return not self._ev(node[1], f)
        if op == "in":
            value = self._ev(node[1], f)
            return value is not None and str(value) in [str(self._ev(i, f)) for i in node[2]]
        if op == "cmp":
            a, b = self._ev(node[2], f), self._ev(node[3], f)
            if a is None or b is None:
                return False
            if isinstance(a, list):  # multivalue (tag): any value
                return (str(b) in a) if node[1] in ("=", "==") else (str(b) not in a)
            if node[1] in ("=", "=="):
                return str(a) == str(b)
            if node[1] == "!=":
                return str(a) != str(b)
            a, b = float(a), float(b)
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[node[1]]
        name, args = node[1], node[2]
        if name == "if":
            return self._ev(args[1], f) if self._ev(args[0], f) else self._ev(args[2], f)
        if name == "case":
            for cond, value in zip(args[::2], args[1::2]):
                if self._ev(cond, f):
                    return self._ev(value, f)
            return None
        values = [self._ev(a, f) for a in args]
        if name == "coalesce":
            return next((v for v in values if v not in (None, "")), None)
        if name == "nullif":
            return None if values[0] == values[1] else values[0]
        if name == "null":
            return None
        if name == "true":
            return True
        if name == "lower":
            return None if values[0] is None else str(values[0]).lower()
        if name == "match":
            return values[0] is not None and re.search(values[1], str(values[0])) is not None
        if name == "like":
            if values[0] is None:
                return False
            pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in values[1])
            return re.fullmatch(pattern, str(values[0]), re.S) is not None
        if name == "replace":
            return None if values[0] is None else re.sub(values[1], values[2], str(values[0]))
        if name == "isnotnull":
            return values[0] is not None
        if name == "isnull":
            return values[0] is None
        if name == "isnum":
            try:
                float(values[0])
                return True
            except (TypeError, ValueError):
                return False
        raise AssertionError(f"eval function {name}() is not modelled")


# -- eventtype searches (the forms eventtypes.conf uses) ------------------------
_TERM = re.compile(r'\s*(NOT\s+)?(?:([\w.]+)\s+IN\s*\(([^)]*)\)|([\w.]+)=("[^"]*"|\S+))', re.I)


def search_matches(search: str, fields: dict[str, Any], eventtypes: dict[str, str]) -> bool:
    pos = 0
    while pos < len(search.strip()):
        m = _TERM.match(search, pos)
        assert m, f"eventtype search form not modelled: {search[pos:]!r}"
        pos = m.end()
        negate = bool(m.group(1))
        if m.group(2):
            field, wanted = m.group(2), [v.strip().strip('"').lower() for v in m.group(3).split(",")]
        else:
            field, wanted = m.group(4), [m.group(5).strip('"').lower()]
        if field == "eventtype":
            hit = all(search_matches(eventtypes[w], fields, eventtypes) for w in wanted)
        else:
            value = fields.get(field)
            hit = value is not None and str(value).lower() in wanted
        if hit == negate:
            return False
        if pos >= len(search) or not search[pos:].strip():
            break
    return True


# -- events -----------------------------------------------------------------------
def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields KV_MODE=json extracts."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list):
        key = f"{prefix}{{}}"
        for item in value:
            if isinstance(item, (dict, list)):
                flatten(item, key, out)
            else:
                out.setdefault(key, []).append("null" if item is None else str(item).lower() if isinstance(item, bool) else str(item))
    else:
        out[prefix] = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return out


@pytest.fixture(scope="module")
def vendor_events(tmp_path_factory) -> dict[str, list[dict[str, Any]]]:
    """``sourcetype`` → flattened events, read by each source from its simulator."""
    out: dict[str, list[dict[str, Any]]] = {}
    for spec in INPUTS.values():
        for event in simulated_events(spec.source_type, 120, tmp_path_factory.mktemp(spec.source_type)):
            doc = json.loads(json.dumps(hec_event(event, index=None, host=None, source=None)["event"]))
            fields = flatten(doc)
            fields["sourcetype"] = sourcetype_for(event)
            out.setdefault(fields["sourcetype"], []).append(fields)
    return out


def apply_props(fields: dict[str, Any], stanza: dict[str, str]) -> dict[str, Any]:
    result = dict(fields)
    for key, value in stanza.items():
        if key.startswith("FIELDALIAS-"):
            pairs = re.findall(r"(\S+)\s+AS\s+(\S+)", value)
            for src, dst in pairs:
                if fields.get(src) is not None:
                    result[dst] = fields[src]
    aliased = dict(result)
    for key, value in stanza.items():
        if key.startswith("EVAL-"):
            computed = Eval(value)(aliased)
            name = key[5:]
            if computed is None:
                result.pop(name, None)
            else:
                result[name] = str(computed).lower() if isinstance(computed, bool) else str(computed)
    return result


def required_fields(models: dict[str, Any], tags: set[str], event: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(field, spec, dataset) the data models require of an event with ``tags``."""
    found = []

    def walk(datasets, inherited):
        for ds in datasets:
            if not any(set(group) <= tags for group in ds.get("tags", [])):
                continue
            fields = inherited + ds.get("fields", [])
            for fld in fields:
                kind = fld.get("type")
                condition = fld.get("condition")
                if kind == "required" or (kind == "conditional" and condition and _condition(condition, event)):
                    found.append((fld["name"], fld, ds["name"]))
            walk(ds.get("child_dataset", []), fields)

    for model in models.values():
        walk(model["objects"], [])
    return found


def _condition(text: str, event: dict[str, Any]) -> bool:
    return all(event.get(k) == v.strip('"') for k, v in re.findall(r"(\w+)=(\S+)", text) if v != "*") and all(
        event.get(k) is not None for k, v in re.findall(r"(\w+)=(\S+)", text) if v == "*"
    )


# -- tests --------------------------------------------------------------------------
def test_every_conf_file_parses(confs):
    assert {"props", "eventtypes", "tags", "collections"} <= set(confs)
    for sourcetype in ("hpe:greenlake:audit", "crusoe:cloud:audit", "progress:mft:audit", "vmware:cbc:audit"):
        assert confs["props"][sourcetype]["KV_MODE"] == "json"
    assert "field.state" in confs["collections"]["ta_siem_forwarder_checkpoints"]
    for section in confs["tags"]:
        assert section.removeprefix("eventtype=") in confs["eventtypes"]


def test_every_eval_and_search_is_understood(confs):
    for stanza in confs["props"].values():
        for key, value in stanza.items():
            if key.startswith("EVAL-"):
                Eval(value)
    for name, stanza in confs["eventtypes"].items():
        search_matches(stanza["search"], {}, {n: s["search"] for n, s in confs["eventtypes"].items()})


def test_every_cim_tagged_eventtype_maps_every_required_field(confs, data_models, vendor_events):
    eventtypes = {name: s["search"] for name, s in confs["eventtypes"].items()}
    tags_of = {name.removeprefix("eventtype="): {t for t, on in s.items() if on == "enabled"} for name, s in confs["tags"].items()}
    matched: dict[str, int] = {name: 0 for name in tags_of}
    problems: list[str] = []
    assert set(vendor_events) == {"hpe:greenlake:audit", "crusoe:cloud:audit", "progress:mft:audit", "vmware:cbc:audit"}
    for sourcetype, events in vendor_events.items():
        for raw in events:
            event = apply_props(raw, confs["props"][sourcetype])
            types = [name for name in tags_of if search_matches(eventtypes[name], event, eventtypes)]
            assert len(types) <= 1, f"{sourcetype} event in several CIM eventtypes {types}: {raw.get('action')}"
            tags = set().union(*(tags_of[t] for t in types)) if types else set()
            event["tag"] = sorted(tags)
            for name in types:
                matched[name] += 1
            for field, spec, dataset in required_fields(data_models, tags, event):
                value = event.get(field)
                if value in (None, ""):
                    problems.append(f"{sourcetype} {types}: {dataset}.{field} missing (action={raw.get('action')!r})")
                    continue
                expected = spec.get("expected_values")
                if expected and value not in expected:
                    problems.append(f"{sourcetype} {types}: {dataset}.{field}={value!r} not in {expected}")
                validity = spec.get("validity")
                if validity and validity != field and Eval(validity, single_quotes_are_fields=False)(event) is None:
                    problems.append(f"{sourcetype} {types}: {dataset}.{field}={value!r} fails {validity}")
    assert not problems, "\n".join(sorted(set(problems))[:30])
    assert all(matched.values()), f"eventtypes that matched no sample event: {[n for n, c in matched.items() if not c]}"


def test_change_actions_use_the_cim_vocabulary(confs, vendor_events):
    allowed = {"acl_modified", "cleared", "created", "deleted", "modified", "read", "stopped", "updated", "success", "failure"}
    seen = set()
    for sourcetype, events in vendor_events.items():
        for raw in events:
            event = apply_props(raw, confs["props"][sourcetype])
            seen.add(event["action"])
            assert event["action"] in allowed, (sourcetype, raw.get("action"), event["action"])
            assert event["vendor_action"] == raw.get("action")
    assert {"created", "modified"} <= seen
