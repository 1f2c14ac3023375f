"""The one HTTP error mapper: an answer or a failure to get one -> a `cmdai_cli.errors` member.

Every HTTP client of cmdai reports failures through here, so that a 401 reads the same
whichever service said it. It takes plain values, whatever client made the request: an
answer as (status, headers, body) (`error_for_response`), no answer as what kind of
failure it was and its cause (`error_for_failure`; `error_for_exception` reads those
from an httpx exception). Messages name the service and the request (method and path,
never the query string, which may carry credentials) and pass through `redact.scrub`.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from cmdai_cli import redact
from cmdai_cli.errors import CmdaiError, RemoteRefused, RemoteUnreachable

if TYPE_CHECKING:
    import httpx

_MAX_DETAIL = 300
# Why no answer came: the connection could not be made, the answer did not come in time,
# or what came was not HTTP.
Failure = Literal["connect", "timeout", "protocol"]


@dataclass(frozen=True)
class Problem:
    """One complaint from an error body: a message, and the field it is about if any."""

    message: str
    field: str | None = None
    type: str | None = None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def problems(body: Any) -> list[Problem]:
    """The complaints in a decoded error body, in the shapes services commonly use.

    Segment's `{"errors": [{"type", "message", "field"?}]}`, and the simpler
    `{"error": "..."}`, `{"message": "..."}` and `{"error": {"message": ...}}`.
    """
    found: list[Problem] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors:
                if isinstance(item, dict):
                    message = item.get("message") or item.get("detail") or item.get("type")
                    field = item.get("field")
                    kind = item.get("type")
                    found.append(
                        Problem(
                            _clip(str(message or "no message")),
                            str(field) if field else None,
                            str(kind) if kind else None,
                        )
                    )
                elif isinstance(item, str):
                    found.append(Problem(_clip(item)))
            return found
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return [Problem(_clip(str(error["message"])))]
        if isinstance(error, str):
            return [Problem(_clip(error))]
        message = body.get("message")
        if isinstance(message, str):
            return [Problem(_clip(message))]
    return found


def body_problems(headers: Mapping[str, str], body: bytes) -> list[Problem]:
    """The complaints in an answer's body: JSON in the shapes of `problems`, else text."""
    try:
        decoded = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        text = body.decode(_charset(headers), errors="replace").strip() if body else ""
        # An HTML error page says nothing useful in one line.
        if text and not text.lstrip().startswith("<"):
            return [Problem(_clip(text))]
        return []
    return problems(decoded)


def _charset(headers: Mapping[str, str]) -> str:
    """The body's character set as its Content-Type names it; UTF-8 when it names none
    that Python knows (as httpx reads a body's text)."""
    content_type = headers.get("content-type") or headers.get("Content-Type") or ""
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"


def describe(problems_: list[Problem]) -> str:
    parts = []
    for problem in problems_:
        parts.append(f"{problem.field}: {problem.message}" if problem.field else problem.message)
    return "; ".join(parts)


def _where(method: str | None, url: str | None) -> str:
    if not method or not url:
        return ""
    return f"{method} {urlsplit(url).path}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(url: str | None) -> str:
    """`host[:port]` of `url`, without credentials, and without the scheme's default port."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        host += f":{port}"
    return host


_HINTS = {
    401: "the token is missing, wrong or expired",
    403: "the token is valid but may not do this (check its workspace and access)",
    404: "check the id or name",
    409: "it conflicts with what is already there; re-running reads the current state first",
    413: "the request body is too large",
    422: "fix the fields named above",
    429: "rate limited; wait a minute and run the command again",
}


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    service: str,
    method: str | None = None,
    url: str | None = None,
    hints: dict[int, str] | None = None,
    context: str | None = None,
) -> CmdaiError:
    """The error for a non-success answer: its status, headers (a mapping that finds
    lower-case names) and body, and the request's `method` and `url` when known. `hints`
    overrides the default hint per status.

    The one rule of cmdai's exit codes: the service answered and refused, any 4xx (429
    included: a caller gives up on it only once its retries are spent) -> RemoteRefused
    (exit 5), carrying the status; 5xx -> RemoteUnreachable (exit 6), since the service
    is not available to do the work, just as when it cannot be reached.
    """
    where = _where(method, url)
    if 300 <= status < 400:
        return _redirect(status, headers, service=service, where=where)
    found = body_problems(headers, body)
    detail = describe(found)
    try:
        # The standard phrase: servers spell their own in any case, or not at all.
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    head = f"{service} answered {status}{' ' + reason if reason else ''}"
    if where:
        head += f" to {where}"
    if context:
        head += f" ({context})"
    if status == 422 and found:
        fields = [p for p in found if p.field]
        if fields:
            detail = "invalid " + "; ".join(f"{p.field}: {p.message}" for p in fields)
            rest = [p for p in found if not p.field]
            if rest:
                detail += "; " + describe(rest)
    message = redact.scrub(f"{head}: {detail}" if detail else head)
    hint = (hints or {}).get(status) or _HINTS.get(status)
    if status >= 500:
        return RemoteUnreachable(message, hint=hint or "the service failed; try again later")
    return RemoteRefused(message, status=status, hint=hint)


def shown_url(url: str) -> str:
    """`url` as cmdai shows it: scheme, host, port and path; never credentials or query."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "an unreadable URL"
    path = parts.path or ("/" if parts.netloc else "")
    if not parts.netloc:
        return _clip(path) or "nowhere"
    return _clip(f"{parts.scheme}://{_host(url)}{path}")


def _redirect(status: int, headers: Mapping[str, str], *, service: str, where: str) -> CmdaiError:
    """A 3xx: an answer, refused. The request may carry a secret (a write key, a token, a
    signature, a key in its URL), and a redirect may point anywhere: cmdai follows none."""
    location = headers.get("location") or headers.get("Location")
    to = f" redirecting to {shown_url(location)}" if location else " (a redirect)"
    message = f"{service} answered {status}{to}"
    if where:
        message += f" for {where}"
    message += "; cmdai follows no redirects, so that no key reaches a host it was not given"
    return RemoteRefused(
        redact.scrub(message),
        status=status,
        hint="give the URL the service redirects to, if it is the right service",
    )


_FAILED = {
    "timeout": "did not answer in time",
    "connect": "could not be reached",
    "protocol": "closed the connection without a valid answer",
}


def error_for_failure(
    failure: Failure | None,
    cause: str,
    *,
    service: str,
    method: str | None = None,
    url: str | None = None,
    context: str | None = None,
) -> CmdaiError:
    """The error for a request that got no answer (connection, TLS, time-out, protocol):
    `failure` says which (None: some other transport failure), `cause` what was seen.

    Always a RemoteUnreachable (exit 6); typed as CmdaiError like `error_for_response` so
    that callers can hold either answer in one variable.
    """
    what = _FAILED[failure or "connect"]
    host = _host(url)
    where = _where(method, url)
    message = f"{service}{' at ' + host if host else ''} {what}"
    if where:
        message += f" ({where})"
    cause = cause.strip()
    if cause:
        message += f": {_clip(cause)}"
    if context:
        message += f"; {context}"
    return RemoteUnreachable(
        redact.scrub(message), hint="check the host and your network, then try again"
    )


def error_for_exception(
    exc: httpx.HTTPError | OSError, *, service: str, context: str | None = None
) -> CmdaiError:
    """`error_for_failure` for an httpx exception (or an OSError), read from it."""
    # Whoever holds an httpx exception has loaded httpx; importing it at the top would
    # make every importer of this module pay for it: 60-100 ms (python -X importtime),
    # which a replay to Command AI, sending through `http11`, never needs.
    import httpx

    method = url = None
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:
            pass
        else:
            method, url = request.method, str(request.url)
    failure: Failure | None = None
    if isinstance(exc, httpx.TimeoutException):
        failure = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        failure = "connect"
    elif isinstance(exc, httpx.RemoteProtocolError):
        failure = "protocol"
    return error_for_failure(
        failure, str(exc), service=service, method=method, url=url, context=context
    )
