"""What a Carbon Black Cloud audit description says: action, category, object, failure wording.

The v1 record has no action field: ``description`` is free text such as
``Added user bob@example.com``, ``Updated policy 'Denied apps'`` or ``User x
retrieved secret for API ID ABCDEFGHIJ``. Names the console quotes (policies,
reports, watchlists...) are the user's own words, so a quoted span never decides
anything: ``Updated report, 'Invalid certificate watchlist'`` is an update of a
report, not a failure, and ``Deleted role 'Failed login responders'`` is a
deletion, not a login. The quoted text becomes the object's name instead.

- **Action**: the earliest verb of the unquoted text (``Deleted API key created by
  bob`` is a delete): "logged in"/"log in" → ``login``, "logged out" → ``logout``,
  "live response" → ``live_response``, created/added → ``create``, updated/
  modified/changed/enabled/disabled → ``update``, deleted/removed → ``delete``,
  downloaded → ``download``, retrieved → ``retrieve``; otherwise none.
- **Object** (``target``): the first object noun after the verb (before it when
  none follows): user, API key / API ID / secret (``api_key``), access level,
  role, connector, password, permission, policy, report, watchlist, feed, alert,
  rule, device, sensor kit, sensor, file. Its name is the quoted text or e-mail
  address right after the noun; an API ID (``API ID X``, ``ID X``, or the
  ten-character key id right after "API key"/"connector") is its id. Logins and
  logouts have no object.
- **Category**: ``authentication`` for logins/logouts, ``session`` for live
  response, ``iam`` for users, API keys, access levels, roles, connectors,
  passwords and permissions (or, without an object, when the text names one), else
  ``configuration``.
- **Failure wording** (fail/failed/failure/unsuccessful/invalid/denied/locked out,
  outside quotes): only a fallback for records without ``flagged`` (the queue and
  the Data Forwarder omit it); the source lets ``flagged`` decide when present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_QUOTED = re.compile(r"""(?<!\w)'([^']*)'(?!\w)|(?<!\w)"([^"]*)"(?!\w)""")
# Quoted spans, or words (internal apostrophes allowed: "user's"); punctuation separates.
_PIECE = re.compile(r"""(?<!\w)'(?P<sq>[^']*)'(?!\w)|(?<!\w)"(?P<dq>[^"]*)"(?!\w)|(?P<word>[^\s,;:()'"]+(?:'[^\s,;:()'"]+)*)""")
_ACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\blog(?:ged)?[ -]?in\b|\bsign(?:ed)?[ -]?in\b", re.I), "login"),
    (re.compile(r"\blog(?:ged)?[ -]?out\b|\bsign(?:ed)?[ -]?out\b", re.I), "logout"),
    (re.compile(r"\blive ?response\b", re.I), "live_response"),
    (re.compile(r"\b(?:create[ds]?|add(?:ed|s)?)\b", re.I), "create"),
    (re.compile(r"\b(?:update[ds]?|modified|changed|enabled|disabled)\b", re.I), "update"),
    (re.compile(r"\b(?:delete[ds]?|removed?)\b", re.I), "delete"),
    (re.compile(r"\bdownload(?:ed|s)?\b", re.I), "download"),
    (re.compile(r"\bretriev(?:ed|es|e)\b", re.I), "retrieve"),
)
_CATEGORY_OF_ACTION = {"login": "authentication", "logout": "authentication", "live_response": "session"}
_FAILED = re.compile(r"\b(?:fail(?:ed|ure|s)?|unsuccessful|invalid|denied|locked out)\b", re.I)
_IAM_WORDS = re.compile(r"\b(?:users?|roles?|api (?:keys?|ids?)|connectors?|passwords?|access levels?|permissions?)\b", re.I)
# Object nouns (singular, lower case) → target.type; longer phrases first.
_OBJECTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("api", "key"), "api_key"),
    (("api", "id"), "api_key"),
    (("api", "secret"), "api_key"),
    (("access", "level"), "access_level"),
    (("sensor", "kit"), "sensor_kit"),
    (("secret",), "api_key"),
    (("user",), "user"),
    (("role",), "role"),
    (("connector",), "connector"),
    (("password",), "password"),
    (("permission",), "permission"),
    (("policy",), "policy"),
    (("report",), "report"),
    (("watchlist",), "watchlist"),
    (("feed",), "feed"),
    (("alert",), "alert"),
    (("rule",), "rule"),
    (("device",), "device"),
    (("sensor",), "sensor"),
    (("file",), "file"),
)
IAM_OBJECTS = frozenset({"user", "api_key", "access_level", "role", "connector", "password", "permission"})
_API_ID = re.compile(r"[A-Z0-9]{10}")  # the console's API IDs / connector ids (e.g. DEFGHIJKLM)


@dataclass(frozen=True, slots=True)
class Description:
    """The meaning of one description."""

    action: str | None
    category: str
    says_failed: bool
    target_type: str | None = None
    target_id: str | None = None
    target_name: str | None = None


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    quoted: bool


def _pieces(description: str) -> list[_Piece]:
    out = []
    for m in _PIECE.finditer(description):
        word = m.group("word")
        out.append(_Piece(word, False) if word is not None else _Piece(m.group("sq") if m.group("sq") is not None else m.group("dq"), True))
    return out


def _singular(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _object_at(pieces: list[_Piece], i: int) -> tuple[str, int] | None:
    """(target type, index after the noun) when an object noun starts at ``i``."""
    for phrase, kind in _OBJECTS:
        n = len(phrase)
        if i + n <= len(pieces) and all(not p.quoted and _singular(p.text) == w for p, w in zip(pieces[i:i + n], phrase)):
            return kind, i + n
    return None


def _identify(pieces: list[_Piece], kind: str, after: int) -> tuple[str | None, str | None]:
    """(id, name) of the object whose noun ends at ``after``."""
    ident = name = None
    nxt = pieces[after] if after < len(pieces) else None
    if nxt is not None:
        if nxt.quoted:
            name = nxt.text or None
        elif "@" in nxt.text:
            name = nxt.text
        elif kind in ("api_key", "connector") and _API_ID.fullmatch(nxt.text):
            ident = nxt.text
    if ident is None:  # "... with API ID X", "(ID 1234)", up to the next object of another kind
        for j in range(after, len(pieces) - 1):
            other = _object_at(pieces, j)
            if other is not None and other[0] != kind:
                break
            if not pieces[j].quoted and pieces[j].text.lower() == "id" and not pieces[j + 1].quoted:
                ident = pieces[j + 1].text
                break
    return ident, name


@lru_cache(maxsize=4096)
def describe(description: str) -> Description:
    """What ``description`` says (see the module docstring); cached, as descriptions repeat."""
    unquoted = _QUOTED.sub(" ", description)
    says_failed = bool(_FAILED.search(unquoted))
    found = [(m.start(), action) for pattern, action in _ACTIONS for m in [pattern.search(unquoted)] if m]
    action = min(found)[1] if found else None
    category = _CATEGORY_OF_ACTION.get(action or "")
    if category is not None:
        return Description(action, category, says_failed)
    pieces = _pieces(description)
    verb_at = _verb_index(pieces)
    target = None
    for i in [*range(verb_at + 1, len(pieces)), *range(0, verb_at)] if verb_at >= 0 else range(len(pieces)):
        hit = _object_at(pieces, i)
        if hit is not None:
            ident, name = _identify(pieces, hit[0], hit[1])
            target = (hit[0], ident, name)
            break
    if target is not None:
        category = "iam" if target[0] in IAM_OBJECTS else "configuration"
        return Description(action, category, says_failed, *target)
    return Description(action, "iam" if _IAM_WORDS.search(unquoted) else "configuration", says_failed)


def _verb_index(pieces: list[_Piece]) -> int:
    """Index of the first unquoted word that is one of the action verbs, or -1."""
    for i, piece in enumerate(pieces):
        if not piece.quoted and any(pattern.fullmatch(piece.text) for pattern, _ in _ACTIONS):
            return i
    return -1
