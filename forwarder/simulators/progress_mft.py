"""Progress Automate MFT simulator: PKJWT token endpoint and the audit-log report API.

Strict where the vendor is known to be:

- ``POST /v1/oauth/token`` takes the three parameters as JSON (the vendor sample) or
  form-encoded (``token_body`` picks which are accepted). The client assertion is
  checked by this module's own JWS code (no JWT library, so a library quirk shared
  with the client cannot hide a defect): ES256, a registered ``kid``, a signature
  that verifies against that key's public key, every claim the docs list (``iat``
  too, which the vendor's sample omits), ``aud`` = this server's token URL,
  ``iss`` = ``sub`` = the key's tenant, valid ``nbf``/``iat``/``exp`` (5 s leeway),
  ``exp`` at most 10 minutes ahead, and a ``jti`` never seen before. Failures: 401
  ``invalid_client``; bad requests: 400.
- Report endpoints need a live bearer token and only show the caller's tenant's
  reports. Create validates every field: ``type`` 0/1, ``start`` < ``end`` (RFC 3339
  in UTC with ``Z``), ``actor`` up to 320 characters, enum values exactly as the
  vendor spells them (400 with ASP.NET-style ``errors`` otherwise), ``sourceIp`` an
  IP address.
- A report stays in progress for ``polls_until_ready`` status reads (None: forever),
  then completes (or fails with status ``Failed``/2 when ``fail_reports``). Status is
  a number or a string (``status_style``). A completed report's ``url`` is a new
  download link on each read, on a separate unauthenticated path, valid
  ``url_ttl`` seconds; with ``download_requires_auth`` it answers 403 unless a bearer
  token is sent.
- List (``items``) and delete (204; 404 for unknown ids).

Data is deterministic: ``events_per_hour`` rows in every clock hour, drawn from
``rng(seed, tenant, hour)``, so any window of any day has the same rows on every run.
JSON reports are a top-level array with camelCase keys; CSV reports have a header of
spaced title-case names ("Source IP"), to exercise the source's loose column matching.

Not modelled (unknown for the real service): failure statuses other than the one
knob, report retention and size limits, span limits, rate limits (use ``Faults``),
the real row schema and error-body shapes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import math
import secrets as _secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from forwarder import jsoncodec
from forwarder.simulators.base import Request, Response, Simulator, b64url_decode, format_rfc3339, parse_rfc3339, rng

# What vendors/progress-mft.md documents (§1, §3, §5.1).
TOKEN_PATH = "/v1/oauth/token"
REPORTS_PATH = "/v1/reports/audit-logs"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUIRED_CLAIMS = ("iss", "sub", "aud", "jti", "nbf", "iat", "exp")
ACTOR_TYPES = ("All", "User", "ApiKey")
ACTIONS = ("Get", "Create", "Update", "Delete")
OUTCOMES = ("Success", "Error")
RESOURCES = (
    "Task", "Endpoint", "AuthenticationMethod", "Schedule", "Agent", "Folder", "KeyCert", "Script", "Parameter",
    "Tag", "User", "Role", "Report", "IdentityProvider", "PublicKey", "Membership", "TenantSetting", "AuditLog", "System",
)
MAX_ACTOR = 320
LEEWAY = 5
MAX_ASSERTION_LIFETIME = 600
CSV_COLUMNS = (
    ("id", "Id"), ("timestamp", "Timestamp"), ("actor", "Actor"), ("actorType", "Actor Type"),
    ("action", "Action"), ("resource", "Resource"), ("resourceId", "Resource Id"),
    ("resourceName", "Resource Name"), ("outcome", "Outcome"), ("sourceIp", "Source IP"), ("message", "Message"),
)
USERS = ("alice@example.com", "bob@example.com", "carol@example.org", "ops-admin@example.com")
API_KEYS = ("ci-pipeline", "nightly-export")
IPS = ("203.0.113.7", "198.51.100.23", "192.0.2.44", "2001:db8::15", "10.20.30.40")
NAMES = ("Nightly sync", "Partner upload", "Archive", "Inbound SFTP", "Reports", "Finance")
VERBS = {"Get": "Read", "Create": "Created", "Update": "Updated", "Delete": "Deleted"}


@dataclass
class _Client:
    tenant: str
    public_key: ec.EllipticCurvePublicKey


@dataclass
class _Report:
    id: str
    tenant: str
    type: int
    start: dt.datetime
    end: dt.datetime
    filters: dict[str, Any]
    polls: int = 0
    body: bytes | None = None
    created_at: str = ""
    links: list[str] = field(default_factory=list)


class ProgressMftSimulator(Simulator):
    """Automate MFT's token endpoint and audit-log report API, on 127.0.0.1."""

    VENDOR = "progress_mft"

    def __init__(
        self,
        *,
        polls_until_ready: int | None = 1,
        status_style: str = "string",
        fail_reports: bool = False,
        download_requires_auth: bool = False,
        url_ttl: float = 900.0,
        row_ids: bool = True,
        events_per_hour: int = 60,
        token_body: str = "any",
        **kwargs: Any,
    ) -> None:
        if status_style not in ("string", "number"):
            raise ValueError("status_style must be 'string' or 'number'")
        if token_body not in ("json", "form", "any"):
            raise ValueError("token_body must be 'json', 'form' or 'any'")
        self.polls_until_ready = polls_until_ready
        self.status_style = status_style
        self.fail_reports = fail_reports
        self.download_requires_auth = download_requires_auth
        self.url_ttl = url_ttl
        self.row_ids = row_ids
        self.events_per_hour = events_per_hour
        self.token_body = token_body
        self.clients: dict[str, _Client] = {}
        self.reports: dict[str, _Report] = {}
        self.created = 0
        self.deleted = 0
        self.downloads = 0
        self.broken_downloads = 0  # test knob: cut this many next downloads short
        self._links: dict[str, tuple[str, float]] = {}
        self._jtis: dict[str, float] = {}
        self._state = threading.Lock()
        super().__init__(**kwargs)

    # -- set-up ------------------------------------------------------------------
    def setup(self) -> None:
        self.route("POST", TOKEN_PATH, self._token)
        self.route("GET", REPORTS_PATH, self._list)
        self.route("POST", REPORTS_PATH, self._create)
        self.route("GET", REPORTS_PATH + r"/(?P<rid>[^/]+)", self._get)
        self.route("DELETE", REPORTS_PATH + r"/(?P<rid>[^/]+)", self._delete)
        self.route("GET", r"/files/(?P<link>[A-Za-z0-9_-]+)/(?P<name>[^/]+)", self._download)

    @property
    def token_url(self) -> str:
        """The ``aud`` every assertion must carry."""
        return self.url + TOKEN_PATH

    def register_key(self, tenant: str, public_key: ec.EllipticCurvePublicKey, kid: str | None = None) -> str:
        """Register an API key's public half for ``tenant``; return its key id."""
        kid = kid or str(uuid.UUID(int=rng(self.seed, "kid", tenant, len(self.clients)).getrandbits(128), version=4))
        self.clients[kid] = _Client(tenant, public_key)
        return kid

    def new_client(self, tenant: str) -> tuple[str, str]:
        """Generate a P-256 key pair, register it for ``tenant``; return (kid, private key PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return self.register_key(tenant, key.public_key()), pem

    def expire_links(self) -> None:
        """Make every download link issued so far expired (test knob)."""
        with self._state:
            self._links = {k: (rid, 0.0) for k, (rid, _) in self._links.items()}

    def demo_source(self, events: int) -> tuple[dict[str, Any], dict[str, str]]:
        """Six one-hour reports holding about ``events`` rows; the key pair is made here, in memory."""
        tenant = "demo-tenant-0001"
        kid, pem = self.new_client(tenant)
        self.events_per_hour = max(1, math.ceil(events / 6))
        env_name = "FORWARDER_DEMO_PROGRESS_MFT_PRIVATE_KEY"
        table = {
            "name": "progress-mft-demo",
            "type": "progress_mft",
            "base_url": self.url,
            "tenant_id": tenant,
            "key_id": kid,
            "private_key": f"env:{env_name}",
            "lookback": "6h",
            "lag": "0s",
            "poll_interval": "0.05s",
            "http": {"backoff_base": 0.05, "backoff_max": 0.5},
        }
        return table, {env_name: pem}

    # -- token endpoint ----------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
        accepted = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
        allowed = set(accepted.values()) if self.token_body == "any" else {accepted[self.token_body]}
        if ctype not in allowed:
            return _oauth_error(415, "invalid_request", f"unsupported content type {ctype or '(none)'}")
        try:
            if ctype == "application/json":
                params = request.json()
            else:
                params = {k: v[0] for k, v in parse_qs(request.body.decode(), strict_parsing=True).items()}
        except ValueError:
            return _oauth_error(400, "invalid_request", "body cannot be parsed")
        if not isinstance(params, dict):
            return _oauth_error(400, "invalid_request", "body must be an object")
        if params.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            return _oauth_error(400, "invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = params.get("client_assertion")
        if not isinstance(assertion, str) or not assertion:
            return _oauth_error(400, "invalid_request", "client_assertion is required")
        problem, tenant = self._verify(assertion)
        if problem:
            return _oauth_error(401, "invalid_client", problem)
        token = self.tokens.issue(tenant)
        return Response.json({"access_token": token, "token_type": "Bearer", "expires_in": int(self.tokens.ttl)})

    def _verify(self, assertion: str) -> tuple[str | None, str]:
        """(problem, tenant): problem is None when the assertion is acceptable.

        A compact JWS (RFC 7515) checked by hand, not by a JWT library: header
        ``alg`` ES256 and a registered ``kid``; the 64-byte ``r || s`` signature over
        ``header.payload`` verifies with that key (RFC 7518 §3.4); every documented
        claim present; ``aud`` this server's token URL; ``iss`` = ``sub`` = the key's
        tenant; ``nbf``/``iat`` not in the future and ``exp`` not past (``LEEWAY``
        seconds), ``exp`` at most 10 minutes ahead; ``jti`` never seen before.
        """
        parts = assertion.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header, claims = (jsoncodec.loads(b64url_decode(part)) for part in parts[:2])
            signature = b64url_decode(parts[2])
        except (ValueError, RecursionError):
            return "client_assertion is not a JWT", ""
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "client_assertion is not a JWT", ""
        if header.get("alg") != "ES256":
            return "alg must be ES256", ""
        kid = header.get("kid")
        client = self.clients.get(kid) if isinstance(kid, str) else None
        if client is None:
            return "unknown kid", ""
        if len(signature) != 64:
            return "signature does not verify with the key registered for this kid", ""
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            client.public_key.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "signature does not verify with the key registered for this kid", ""
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            return f"client_assertion lacks the {', '.join(missing)} claim", ""
        times = {name: claims[name] for name in ("nbf", "iat", "exp")}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in times.values()):
            return "nbf, iat and exp must be NumericDate numbers", ""
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if self.token_url not in audience:
            return f"aud must be {self.token_url}", ""
        if claims["iss"] != client.tenant or claims["sub"] != client.tenant:
            return "iss and sub must be the tenant id of this key", ""
        now = time.time()
        if times["exp"] <= now - LEEWAY:
            return "client_assertion has expired", ""
        if times["nbf"] > now + LEEWAY or times["iat"] > now + LEEWAY:
            return "client_assertion is not valid yet (nbf/iat in the future)", ""
        if times["exp"] > now + MAX_ASSERTION_LIFETIME + LEEWAY:
            return "exp is more than 10 minutes ahead", ""
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            return "jti must be a non-empty string", ""
        with self._state:
            self._jtis = {j: exp for j, exp in self._jtis.items() if exp + LEEWAY >= now}
            if jti in self._jtis:
                return "jti has been used before", ""
            self._jtis[jti] = times["exp"]
        return None, client.tenant

    # -- report endpoints ------------------------------------------------------------
    def _tenant(self, request: Request) -> str | None:
        return self.tokens.subject(request.header("authorization"))

    def _list(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if tenant is None:
            return _unauthorized()
        with self._state:
            items = [self._view(r) for r in self.reports.values() if r.tenant == tenant]
        return Response.json({"items": items})

    def _create(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if tenant is None:
            return _unauthorized()
        try:
            body = request.json()
        except ValueError:
            return _validation({"$": ["the body is not valid JSON"]})
        if not isinstance(body, dict):
            return _validation({"$": ["the body must be an object"]})
        errors = _check_create(body)
        if errors:
            return _validation(errors)
        with self._state:
            self.created += 1
            rid = str(uuid.UUID(int=rng(self.seed, "report", tenant, self.created).getrandbits(128), version=4))
            report = _Report(
                id=rid,
                tenant=tenant,
                type=_report_type(body["type"]),
                start=parse_rfc3339(body["start"]),
                end=parse_rfc3339(body["end"]),
                filters={k: body.get(k) for k in ("actor", "actorType", "actions", "resources", "outcomes", "sourceIp")},
                created_at=dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            )
            self.reports[rid] = report
            view = self._view(report)
        return Response.json(view, 201)

    def _owned(self, request: Request, rid: str) -> _Report | Response:
        """The caller's report ``rid``, or the error answer (401 without a token, 404 for others' ids)."""
        tenant = self._tenant(request)
        if tenant is None:
            return _unauthorized()
        report = self.reports.get(rid)
        if report is None or report.tenant != tenant:
            return _not_found()
        return report

    def _get(self, request: Request, rid: str) -> Response:
        with self._state:
            report = self._owned(request, rid)
            if isinstance(report, Response):
                return report
            report.polls += 1
            return Response.json(self._view(report, link=True))

    def _delete(self, request: Request, rid: str) -> Response:
        with self._state:
            report = self._owned(request, rid)
            if isinstance(report, Response):
                return report
            del self.reports[rid]
            for link in report.links:
                self._links.pop(link, None)
            self.deleted += 1
        return Response(204)

    def _download(self, request: Request, link: str, name: str) -> Response:
        with self._state:
            rid, expires = self._links.get(link, ("", 0.0))
            report = self.reports.get(rid)
            if report is None:
                return Response.json({"error": "NoSuchKey"}, 404)
            if expires < time.monotonic():
                return Response.json({"error": "AccessDenied", "message": "link expired"}, 403)
            if self.download_requires_auth and self.tokens.subject(request.header("authorization")) != report.tenant:
                return Response.json({"error": "AccessDenied"}, 403)
            self.downloads += 1
            body = report.body or b""
            ctype = "text/csv" if report.type == 1 else "application/json"
            resp = Response(200, body, {"Content-Type": ctype})
            if self.broken_downloads > 0 and body:
                self.broken_downloads -= 1
                resp.headers["X-Truncated"] = "1"  # the base server cuts the body in half
            return resp

    def _view(self, report: _Report, link: bool = False) -> dict[str, Any]:
        """The report as the API shows it; completes it and (with ``link``) mints a download link."""
        ready = self.polls_until_ready is not None and report.polls > self.polls_until_ready
        if ready and self.fail_reports:
            status: Any = "Failed" if self.status_style == "string" else 2
            return {"id": report.id, "status": status, "url": None, "size": None}
        if ready and report.body is None:
            report.body = self.render(report)
        url = None
        if ready and link:
            token = _secrets.token_urlsafe(18)
            self._links[token] = (report.id, time.monotonic() + self.url_ttl)
            report.links.append(token)
            url = f"{self.url}/files/{token}/{report.id}.{'csv' if report.type == 1 else 'json'}"
        names = ("InProgress", "Completed") if self.status_style == "string" else (0, 1)
        return {
            "id": report.id,
            "status": names[1] if ready else names[0],
            "type": report.type,
            "start": format_rfc3339(report.start),
            "end": format_rfc3339(report.end),
            "createdAt": report.created_at,
            "url": url,
            "size": len(report.body) if report.body is not None else None,
        }

    # -- data ---------------------------------------------------------------------
    def rows(self, tenant: str, start: dt.datetime, end: dt.datetime, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The audit rows of ``[start, end)`` that match ``filters``, oldest first."""
        filters = filters or {}
        out = []
        first = math.floor(start.timestamp() / 3600)
        last = math.ceil(end.timestamp() / 3600)
        for hour in range(first, last):
            for row in self._hour(tenant, hour):
                when = parse_rfc3339(row["timestamp"])
                if start <= when < end and _matches(row, filters):
                    out.append(row)
        return out

    def _hour(self, tenant: str, hour: int) -> list[dict[str, Any]]:
        r = rng(self.seed, tenant, hour)
        rows = []
        offsets = sorted(r.randrange(3600 * 10_000_000) for _ in range(self.events_per_hour))
        for n, offset in enumerate(offsets):
            when = dt.datetime.fromtimestamp(hour * 3600 + offset // 10_000_000, dt.timezone.utc)
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{offset % 10_000_000:07d}Z"
            is_user = r.random() < 0.8
            actor = r.choice(USERS) if is_user else r.choice(API_KEYS)
            action = r.choices(ACTIONS, weights=(5, 2, 2, 1))[0]
            resource = r.choice(RESOURCES)
            outcome = "Error" if r.random() < 0.1 else "Success"
            name = r.choice(NAMES)
            row = {
                "id": str(uuid.UUID(int=r.getrandbits(128), version=4)),
                "timestamp": stamp,
                "actor": actor,
                "actorType": "User" if is_user else "ApiKey",
                "action": action,
                "resource": resource,
                "resourceId": f"{resource.lower()}-{r.randrange(1, 500)}",
                "resourceName": name,
                "outcome": outcome,
                "sourceIp": r.choice(IPS),
                "message": f"{VERBS[action]} {resource} '{name}'" + (": permission denied" if outcome == "Error" else ""),
            }
            if not self.row_ids:
                del row["id"]
            rows.append(row)
        return rows

    def render(self, report: _Report) -> bytes:
        """The report file: a JSON array or a CSV with a header row."""
        rows = self.rows(report.tenant, report.start, report.end, report.filters)
        if report.type == 0:
            return jsoncodec.dumps(rows)
        out = io.StringIO()
        columns = [(key, title) for key, title in CSV_COLUMNS if self.row_ids or key != "id"]
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([title for _, title in columns])
        for row in rows:
            writer.writerow([row[key] for key, _ in columns])
        return out.getvalue().encode()


def _check_create(body: dict[str, Any]) -> dict[str, list[str]]:
    """Validation errors by field, ASP.NET style; empty when the body is acceptable."""
    errors: dict[str, list[str]] = {}
    if _report_type(body.get("type")) is None:
        errors["type"] = ["must be 0 (Json) or 1 (Csv)"]
    times = {}
    for key in ("start", "end"):
        value = body.get(key)
        try:
            times[key] = parse_rfc3339(value, utc_only=True)
        except ValueError:
            errors[key] = ["must be an ISO 8601 UTC time ending in Z"]
    if len(times) == 2 and times["start"] >= times["end"]:
        errors["start"] = ["must be before end"]
    actor = body.get("actor")
    if actor is not None and (not isinstance(actor, str) or len(actor) > MAX_ACTOR):
        errors["actor"] = [f"must be a string of at most {MAX_ACTOR} characters"]
    actor_type = body.get("actorType")
    if actor_type is not None and actor_type not in ACTOR_TYPES:
        errors["actorType"] = [f"unknown value {actor_type!r}"]
    for key, allowed in (("actions", ACTIONS), ("resources", RESOURCES), ("outcomes", OUTCOMES)):
        values = body.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            errors[key] = ["must be an array"]
            continue
        for i, value in enumerate(values):
            if value not in allowed:
                errors[f"{key}[{i}]"] = [f"unknown value {value!r}"]
    ip = body.get("sourceIp")
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            errors["sourceIp"] = ["must be an IPv4 or IPv6 address"]
    return errors


def _report_type(value: Any) -> int | None:
    if value in (0, "Json") and not isinstance(value, bool):
        return 0
    if value in (1, "Csv") and not isinstance(value, bool):
        return 1
    return None


def _matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    actor = filters.get("actor")
    if actor and actor.lower() not in row["actor"].lower():
        return False
    actor_type = filters.get("actorType")
    if actor_type and actor_type != "All" and row["actorType"] != actor_type:
        return False
    for key, column in (("actions", "action"), ("resources", "resource"), ("outcomes", "outcome")):
        wanted = filters.get(key)
        if wanted and row[column] not in wanted:
            return False
    ip = filters.get("sourceIp")
    return not ip or ipaddress.ip_address(ip) == ipaddress.ip_address(row["sourceIp"])


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status)


def _unauthorized() -> Response:
    return Response.json({"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"})


def _not_found() -> Response:
    return Response.json({"title": "Not Found", "status": 404}, 404)


def _validation(errors: dict[str, list[str]]) -> Response:
    return Response.json({"title": "One or more validation errors occurred.", "status": 400, "errors": errors}, 400)
