"""Exception types. Each carries enough context for one readable CLI line.

The CLI prints ``str(exc)`` of any ``ForwarderError`` on one line and exits with
``exc.exit_code``; nothing else should reach the user as a traceback.
"""

from __future__ import annotations


class ForwarderError(Exception):
    """Base of every error the forwarder raises on purpose.

    Its text is redacted whenever it is rendered: the last net under any detail
    (a server's echo of a request) that carries a credential.
    """

    exit_code = 1

    def __str__(self) -> str:
        from forwarder.secrets import redact  # here, as secrets imports this module

        return redact(super().__str__())


class ConfigError(ForwarderError):
    """The configuration file or a command-line argument is wrong."""

    exit_code = 2

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}" if key else f"config: {problem}")


class SecretError(ConfigError):
    """A secret reference (env:NAME / file:PATH) cannot be resolved."""


class StateError(ForwarderError):
    """The checkpoint store cannot be read or written."""


class HttpError(ForwarderError):
    """A remote side answered with an error status, or could not be reached.

    ``url`` never contains a query string (it may carry tokens); ``detail`` is a
    short, redacted excerpt of the response body.
    """

    def __init__(self, what: str, method: str, url: str, status: int | None, detail: str = "") -> None:
        self.what = what
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        where = f"{method} {url}"
        if status is None:
            msg = f"{what}: {where}: {detail}"
        else:
            msg = f"{what}: {where} returned HTTP {status}" + (f": {detail}" if detail else "")
        super().__init__(msg)


class AuthError(HttpError):
    """Credentials were refused (never retried)."""


class SourceError(ForwarderError):
    """A vendor source hit a problem it cannot work around (bad body, cap overflow...)."""


class SinkError(ForwarderError):
    """A sink could not deliver a batch; the checkpoint does not move."""


class RecordError(ForwarderError):
    """One vendor record cannot be normalized; it is dead-lettered, the run goes on."""


class SetupError(ForwarderError):
    """Installing target-side objects (templates, dashboards) failed or was refused."""


class TimeParseError(ValueError):
    """A value is not a timestamp this forwarder can represent (bad text, wrong type, out of range).

    A ValueError, so callers that refuse bad input with ``except ValueError`` keep working;
    ``parse_time`` raises nothing else, whatever the vendor sends.
    """


class UnreadableRecord(RecordError):
    """One record of a stream (a JSON line, a CSV row) could not even be decoded.

    Yielded in the record's place, not raised, so the stream goes on; the per-record
    safety net (``forwarder.sources.base.per_record``) dead-letters ``text`` with this reason.
    """

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason)
        self.text = text
