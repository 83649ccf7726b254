"""Crusoe Cloud audit-log API simulator: strict signing checks, filters, paging, 90-day retention.

Serves ``GET /{v1alpha5|v1}/organizations/{org}/audit-logs`` for one
organization. Every request must carry a valid signature, recomputed here from
the received path, query (in canonical form), method and ``X-Crusoe-Timestamp``
by this module's own implementation of vendors/crusoe.md §3 (``canonical_query``,
``expected_signature``; checked against the vendor's test vectors). Failures
answer 401 ``{"code": "401", "message": "bad_credential"}`` and the reason is
kept in ``auth_failures`` for tests. It refuses timestamps more than 5 minutes
off, unknown access keys and other signature versions. As documented, the order
in which parameters are sent does not matter (the server canonicalizes what it
receives); ``require_sorted=True`` is a stricter test knob that also refuses a
query not sent in sorted order. Unknown or repeated parameters, bad times, a bad
``limit`` and bad or mismatched tokens answer 400 ``bad_request``; another
organization 403.

Data: ``records`` entries spread evenly over ``span`` seconds ending at ``end``
(default: five minutes before the simulator was created), over several projects
(and org-level actions), users, a Crusoe admin and the system actor. Record
``i`` is computed from ``(seed, i)`` on demand, so a million records cost no
memory and ``records`` may be changed at any time. List fields are sent as JSON
arrays or, for about a quarter of records (``list_style="mixed"``), as the
bracketed strings of the 2024 docs; ``client_ip`` carries a port, sometimes as a
bracketed IPv6 address.

Semantics chosen where Crusoe documents none (the source must not rely on them):
``start_time``/``end_time`` compare against the record's ``start_time`` (or, with
``time_field="end_time"``, its ``end_time``) and are both inclusive; without them the last day is served; results come newest first;
``limit`` above ``max_limit`` is clamped; a filtered read may end with an empty
page; ``next_token``/``prev_token`` are bound to the filters they were issued
for. Records older than 90 days are never served. ``queries`` keeps the accepted
query strings and ``served`` counts the records sent, for tests.

Not modelled: records arriving late, rate limits (only the base class's injected
429s), other endpoints, key expiry and roles.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import functools
import hashlib
import hmac
import time
import uuid
from collections import deque
from typing import Any, Callable

from forwarder.simulators.base import UTC, Request, Response, Simulator, b64url_decode, b64url_encode, parse_rfc3339, rng

MAX_SKEW = 300.0
#: Longest request duration (end_time - start_time) of a generated record, in ms.
MAX_DURATION_MS = 20 + 15000
RETENTION_MS = 90 * 86400 * 1000
#: The array query parameters of the audit-log operation (vendors/crusoe.md §4), each sent comma-joined.
ARRAY_PARAMS = (
    "project_ids", "actions", "actor_ids", "actor_emails", "actor_types", "target_ids",
    "target_types", "target_names", "locations", "results", "results_not", "surfaces",
)
_PARAMS = frozenset(ARRAY_PARAMS) | {"start_time", "end_time", "limit", "next_token", "prev_token"}
#: Bytes that form encoding leaves as they are (vendors/crusoe.md §3, step 3.6).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX = frozenset(b"0123456789ABCDEFabcdef")

_LOCATIONS = ("us-east1-a", "us-northcentral1-a", "us-southcentral1-a", "eu-iceland1-a")
_SURFACES = ("Console", "Browser", "Crusoe CLI/v0.24.1", "Crusoe Terraform/v0.5.21", "API")
_FAILURES = (
    ("Bad Request", "invalid instance type"),
    ("Forbidden", "permission denied"),
    ("Not Found", "resource not found"),
    ("Conflict", "resource is in use"),
    ("Internal Server Error", "internal error"),
)
#: (target type, name prefix, actions, details for "Update")
_TARGETS = (
    ("VM", "vm", ("Create", "Start", "Stop", "Update", "Delete", "Reboot"), ("Attach Disk", "Detach Disk", "Resize")),
    ("Disk", "disk", ("Create", "Update", "Delete"), ("Resize",)),
    ("KubernetesCluster", "k8s", ("Create", "Update", "Delete"), ("Upgrade",)),
    ("KubernetesNodePool", "pool", ("Create", "Update", "Delete"), ("Scale",)),
    ("VPCNetwork", "net", ("Create", "Delete"), ()),
    ("VPCFirewallRule", "fw", ("Create", "Update", "Delete"), ("Change Ports",)),
    ("SSHKey", "key", ("Create", "Delete"), ()),
    ("UserAccessToken", "", ("Create", "Delete"), ()),
    ("Project", "", ("Update",), ("Rename",)),
)
_WORDS = ("renewable", "ocean", "solar", "quiet", "amber", "granite", "swift", "northern")


class CrusoeSimulator(Simulator):
    """The audit-log endpoint of one Crusoe organization."""

    VENDOR = "crusoe"

    def __init__(
        self,
        *,
        records: int = 1000,
        span: float = 6 * 3600.0,
        end: dt.datetime | None = None,
        max_limit: int = 1000,
        list_style: str = "mixed",
        require_sorted: bool = False,
        time_field: str = "start_time",
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
        **kwargs: Any,
    ) -> None:
        if list_style not in ("mixed", "array", "string"):
            raise ValueError("list_style must be mixed, array or string")
        if time_field not in ("start_time", "end_time"):
            raise ValueError("time_field must be start_time or end_time")
        self.time_field = time_field
        self.records = records
        self.span_ms = int(span * 1000)
        self.end = (end or dt.datetime.now(UTC) - dt.timedelta(minutes=5)).replace(microsecond=0)
        self._first_ms = int(self.end.timestamp() * 1000) - self.span_ms
        self.max_limit = max_limit
        self.list_style = list_style
        self.require_sorted = require_sorted
        self.clock = clock
        self.auth_failures: deque[str] = deque(maxlen=1000)
        self.queries: deque[str] = deque(maxlen=10_000)
        self.served = 0
        super().__init__(**kwargs)

    def setup(self) -> None:
        """Derive the organization, credentials, projects and actors from the seed."""
        r = rng(self.seed, "crusoe", "org")
        self.org_id = str(uuid.UUID(int=r.getrandbits(128), version=4))
        self.org_name = f"{r.choice(_WORDS)}-labs"
        self.access_key_id = base64.b32encode(r.randbytes(10)).decode()
        self.secret_key = base64.urlsafe_b64encode(r.randbytes(32)).decode().rstrip("=")
        self.projects = [("", "")] + [
            (str(uuid.UUID(int=r.getrandbits(128), version=4)), f"{r.choice(_WORDS)}-{r.choice(_WORDS)}-{r.randint(100, 999)}")
            for _ in range(4)
        ]
        people = ("ada", "grace", "linus", "margaret", "ken", "barbara")
        self.actors = [
            (str(uuid.UUID(int=r.getrandbits(128), version=4)), f"{p}@{self.org_name}.example", "User", f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}")
            for p in people
        ]
        self.actors.append((str(uuid.UUID(int=r.getrandbits(128), version=4)), "support@crusoe.ai", "Crusoe Admin", f"2001:db8:{r.randint(1, 0xffff):x}::{r.randint(1, 0xffff):x}"))
        self.actors.append(("system", "", "System", "127.0.0.1"))
        self._base = hashlib.sha256(f"crusoe-sim:{self.seed}:".encode())
        self._targets: dict[tuple[int, int, int], str] = {}
        self.route("GET", r"/(?P<version>v1|v1alpha5)/organizations/(?P<org>[^/]+)/audit-logs", self.audit_logs)

    def demo_source(self, events: int) -> tuple[dict[str, Any], dict[str, str]]:
        """Serve ``events`` records and describe a source that reads them."""
        self.records = events
        table = {
            "name": "crusoe-demo",
            "type": "crusoe",
            "base_url": self.url,
            "organization_id": self.org_id,
            "access_key_id": self.access_key_id,
            "secret_key": "env:FORWARDER_DEMO_CRUSOE_SECRET_KEY",
        }
        return table, {"FORWARDER_DEMO_CRUSOE_SECRET_KEY": self.secret_key}

    # -- data ----------------------------------------------------------------
    def time_ms(self, i: int) -> int:
        """Epoch milliseconds of record ``i``: a scrambled point in its own slot, so non-decreasing in ``i``."""
        n = max(1, self.records)
        lo, hi = (i * self.span_ms) // n, ((i + 1) * self.span_ms) // n
        return self._first_ms + lo + ((i * 2654435761) % (hi - lo) if hi > lo else 0)

    def record(self, i: int) -> dict[str, Any]:
        """Record ``i``, the same for the same seed, ``end``, ``span`` and ``records``."""
        h = self._base.copy()
        h.update(i.to_bytes(8, "big"))
        b = h.digest()
        actor_id, email, actor_type, home_ip = self.actors[b[0] % len(self.actors)]
        pi = b[1] % len(self.projects)
        project_id, project_name = self.projects[pi]
        ti = b[2] % len(_TARGETS)
        target_type, prefix, actions, update_details = _TARGETS[ti]
        action = actions[b[3] % len(actions)]
        detail = update_details[b[4] % len(update_details)] if action == "Update" and update_details and b[4] & 1 else ""
        k = b[5] % 6
        if target_type == "UserAccessToken":
            target_ids, target_names = [], ["API access"]
        elif target_type == "Project":
            target_ids, target_names = ([project_id], [project_name]) if project_id else ([], [])
        else:
            target_ids, target_names = [self._target_id(pi, ti, k)], [f"{prefix}-{_WORDS[k]}-{pi}{k}"]
            if detail in ("Attach Disk", "Detach Disk"):
                target_ids.append(self._target_id(pi, 1, k))
                target_names.append(f"disk-{_WORDS[k]}-{pi}{k}")
        location = [] if target_type in ("UserAccessToken", "Project", "SSHKey") else [_LOCATIONS[(pi + b[6]) % len(_LOCATIONS)]]
        result, error = ("OK", "") if b[7] < 225 else _FAILURES[b[7] % len(_FAILURES)]
        port = 1024 + ((b[8] << 8 | b[9]) % 64000)
        client_ip = f"[{home_ip}]:{port}" if ":" in home_ip else f"{home_ip}:{port}"
        start_ms = self.time_ms(i)
        end_ms = start_ms + 20 + ((b[10] << 8 | b[11]) % (MAX_DURATION_MS - 20))
        as_text = self.list_style == "string" or (self.list_style == "mixed" and b[12] % 4 == 0)
        lists = {"locations": location, "target_ids": target_ids, "target_names": target_names}
        rec: dict[str, Any] = {
            "action": action,
            "action_detail": detail,
            "actor_id": actor_id,
            "actor_email": email,
            "actor_type": actor_type,
            "client_ip": client_ip,
            "end_time": self._iso(end_ms),
            "error_message": error,
            "organization_id": self.org_id,
            "organization_name": self.org_name,
            "project_id": project_id,
            "project_name": project_name,
            "target_type": target_type,
            "result": result,
            "start_time": self._iso(start_ms),
            "surface": "Crusoe Terraform/v0.5.21" if actor_type == "System" else _SURFACES[b[13] % len(_SURFACES)],
        }
        for name, values in lists.items():
            rec[name] = f"[{','.join(values)}]" if as_text else values
        return rec

    def _target_id(self, pi: int, ti: int, k: int) -> str:
        key = (pi, ti, k)
        found = self._targets.get(key)
        if found is None:
            digest = hashlib.md5(f"{self.seed}:{key}".encode()).digest()  # noqa: S324 - ids, not security
            found = self._targets[key] = str(uuid.UUID(bytes=digest, version=4))
        return found

    def _iso(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        return f"{_second(sec)}.{milli:03d}Z"

    # -- endpoint --------------------------------------------------------------
    def audit_logs(self, request: Request, version: str, org: str) -> Response:
        """The audit-log listing, after the signature check."""
        problem = self.verify(request)
        if problem:
            self.auth_failures.append(problem)
            return _error(401, "bad_credential")
        if org != self.org_id:
            return _error(403, "unauthorized")
        self.queries.append(request.raw_query)
        try:
            return self._list(request)
        except ValueError:
            return _error(400, "bad_request")

    def verify(self, request: Request) -> str | None:
        """Why the request's signature is not acceptable, or None when it is (vendors/crusoe.md §3)."""
        auth = request.header("authorization") or ""
        stamp = request.header("x-crusoe-timestamp") or ""
        scheme, _, token = auth.partition(" ")
        parts = token.split(":")
        if scheme != "Bearer" or len(parts) != 3:
            return "no 'Bearer 1.0:<key>:<signature>' Authorization header"
        version, key_id, sig = parts
        if version != "1.0":
            return f"unsupported signature version {version!r}"
        if key_id != self.access_key_id:
            return "unknown access key id"
        try:
            skew = abs((self.clock() - parse_rfc3339(stamp)).total_seconds())
        except ValueError:
            return "X-Crusoe-Timestamp is missing or not RFC 3339"
        if skew > MAX_SKEW:
            return f"clock skew of {skew:.0f}s (more than {MAX_SKEW:.0f}s)"
        try:
            expected = expected_signature(self.secret_key, request.method, request.path, request.raw_query, stamp)
        except ValueError as exc:
            return f"query cannot be canonicalized: {exc}"
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            return "signature mismatch"
        keys = [key for key, _ in form_pairs(request.raw_query)]
        if self.require_sorted and keys != sorted(keys):
            return "query parameters not sent in sorted order"
        return None

    def _list(self, request: Request) -> Response:
        q = self._query(request)
        wall = int(self.clock().timestamp() * 1000)
        start = q["start"] if q["start"] is not None else (q["end"] if q["end"] is not None else wall) - 86400_000
        end = q["end"] if q["end"] is not None else wall
        if start > end:
            raise ValueError("start after end")
        start = max(start, wall - RETENTION_MS)
        n = self.records
        match = q["match"]
        if self.time_field == "end_time":  # records are ordered by start_time: widen by the longest duration, then filter
            lo = bisect.bisect_left(range(n), start - MAX_DURATION_MS, key=self.time_ms)
            match = _ended_within(start, end, match)
        else:
            lo = bisect.bisect_left(range(n), start, key=self.time_ms)
        hi = bisect.bisect_right(range(n), end, key=self.time_ms) - 1
        limit = q["limit"]
        fp = q["fp"]
        kind, pos = q["token"]
        items: list[tuple[int, dict[str, Any]]] = []
        if kind == "p":  # the page above index pos, still served newest first
            i = pos + 1
            while i <= hi and len(items) < limit:
                rec = self.record(i)
                if match is None or match(rec):
                    items.append((i, rec))
                i += 1
            items.reverse()
            more_below, more_above = bool(items) and items[-1][0] > lo, i <= hi
        else:
            i = min(hi, pos - 1) if kind == "n" else hi
            while i >= lo and len(items) < limit:
                rec = self.record(i)
                if match is None or match(rec):
                    items.append((i, rec))
                i -= 1
            more_below = i >= lo and len(items) == limit
            more_above = kind == "n" and pos <= hi
        nxt = _token("n", items[-1][0] if items else pos, fp) if more_below and items else ""
        prev = _token("p", items[0][0] if items else pos - 1, fp) if more_above else ""
        with self._lock:
            self.served += len(items)
        return Response.json({"items": [rec for _, rec in items], "next_page_token": nxt, "prev_page_token": prev})

    def _query(self, request: Request) -> dict[str, Any]:
        """Validated query parameters (ValueError → 400)."""
        args: dict[str, str] = {}
        for raw_key, raw_value in form_pairs(request.raw_query):
            key, value = raw_key.decode("utf-8"), raw_value.decode("utf-8")  # UnicodeDecodeError is a ValueError: 400
            if key not in _PARAMS or key in args:
                raise ValueError(f"unknown or repeated parameter {key}")
            args[key] = value
        limit_text = args.get("limit", "100")
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise ValueError("bad limit")
        filters = {k: frozenset(v for v in args[k].split(",") if v) for k in ARRAY_PARAMS if k in args}
        fp = hashlib.sha256(repr(sorted((k, sorted(v)) for k, v in filters.items())).encode()).hexdigest()[:12]
        token: tuple[str, int] = ("", 0)
        if "next_token" in args and "prev_token" in args:
            raise ValueError("both tokens")
        for name, kind in (("next_token", "n"), ("prev_token", "p")):
            if name in args:
                token = _parse_token(args[name], kind, fp)
        return {
            "start": _ms(args.get("start_time")),
            "end": _ms(args.get("end_time")),
            "limit": min(int(limit_text), self.max_limit),
            "match": _matcher(filters),
            "fp": fp,
            "token": token,
        }


@functools.lru_cache(maxsize=4096)
def _second(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def form_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    """The query's ``(key, value)`` pairs as form-decoded bytes, in the order sent.

    Pieces split on ``&``, empty ones skipped, a ``;`` refused, each split at its
    first ``=`` (none: empty value); ``+`` is a space and ``%XX`` a byte. ValueError
    when Crusoe could not canonicalize the query.
    """
    pieces = [piece for piece in raw_query.split("&") if piece]
    if any(";" in piece for piece in pieces):
        raise ValueError("a query parameter contains ';'")
    return [(_form_decode(key), _form_decode(value)) for key, _, value in (piece.partition("=") for piece in pieces)]


def _form_decode(text: str) -> bytes:
    data = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == ord("%"):
            digits = data[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise ValueError(f"broken %-escape at {text[i:i + 3]!r}")
            out.append(int(digits, 16))
            i += 3
            continue
        out.append(ord(" ") if byte == ord("+") else byte)
        i += 1
    return bytes(out)


def _form_encode(data: bytes) -> str:
    return "".join(chr(b) if b in _UNRESERVED else "+" if b == ord(" ") else f"%{b:02X}" for b in data)


def canonical_query(raw_query: str) -> str:
    """Crusoe's canonical query: keys sorted by byte value, each key's values in the order sent, form-encoded."""
    grouped: dict[bytes, list[bytes]] = {}
    for key, value in form_pairs(raw_query):
        grouped.setdefault(key, []).append(value)
    return "&".join(_form_encode(key) + "=" + _form_encode(value) for key in sorted(grouped) for value in grouped[key])


def expected_signature(secret_key: str, method: str, path: str, raw_query: str, timestamp: str) -> str:
    """The signature a request must carry, computed from the received request alone.

    Unpadded base64url of HMAC-SHA256, keyed with the base64url-decoded secret key,
    over the ASCII payload of four newline-terminated lines: path, canonical query,
    verb, timestamp. ValueError if the query cannot be canonicalized or the payload
    is not ASCII.
    """
    payload = f"{path}\n{canonical_query(raw_query)}\n{method.upper()}\n{timestamp}\n"
    try:
        data = payload.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("the payload is not ASCII") from None
    return b64url_encode(hmac.new(b64url_decode(secret_key), data, hashlib.sha256).digest())


def _ms(value: str | None) -> int | None:
    if value is None:
        return None
    return int(parse_rfc3339(value).timestamp() * 1000)


def _token(kind: str, index: int, fp: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{index}:{fp}".encode()).decode().rstrip("=")


def _parse_token(token: str, kind: str, fp: str) -> tuple[str, int]:
    try:
        got_kind, index, got_fp = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        if got_kind != kind or got_fp != fp:
            raise ValueError("token of another kind or query")
        return kind, int(index)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"bad token: {exc}") from None


def _ended_within(start: int, end: int, also: Callable[[dict[str, Any]], bool] | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the record's ``end_time`` is within ``[start, end]`` (ms), and ``also`` holds."""

    def match(rec: dict[str, Any]) -> bool:
        ended = _ms(rec["end_time"])
        return ended is not None and start <= ended <= end and (also is None or also(rec))

    return match


def _as_values(value: Any) -> list[str]:
    if isinstance(value, list):
        return value
    return [v for v in value.strip("[]").split(",") if v]


def _matcher(filters: dict[str, frozenset[str]]) -> Callable[[dict[str, Any]], bool] | None:
    """A predicate for the array filters (None when there are none)."""
    if not filters:
        return None
    scalar = {"project_ids": "project_id", "actions": "action", "actor_ids": "actor_id", "actor_types": "actor_type",
              "target_types": "target_type", "results": "result", "surfaces": "surface"}
    listed = {"target_ids": "target_ids", "target_names": "target_names", "locations": "locations"}

    def match(rec: dict[str, Any]) -> bool:
        for name, wanted in filters.items():
            if name in scalar:
                if rec[scalar[name]] not in wanted:
                    return False
            elif name in listed:
                if wanted.isdisjoint(_as_values(rec[listed[name]])):
                    return False
            elif name == "actor_emails":  # user emails only, as documented
                if rec["actor_type"] != "User" or rec["actor_email"] not in wanted:
                    return False
            elif rec["result"] in wanted:  # results_not
                return False
        return True

    return match


def _error(status: int, message: str) -> Response:
    return Response.json({"code": str(status), "message": message}, status)
