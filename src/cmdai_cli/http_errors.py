"""The one HTTP error mapper: an httpx answer or exception -> a `cmdai_cli.errors` member.

Every HTTP client of cmdai reports failures through here, so that a 401 reads the same
whichever service said it. Messages name the service and the request (method and path,
never the query string, which may carry credentials) and pass through `redact.scrub`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx

from cmdai_cli import redact
from cmdai_cli.errors import CmdaiError, RemoteRefused, RemoteUnreachable

_MAX_DETAIL = 300


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


def response_problems(response: httpx.Response) -> list[Problem]:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        text = response.text.strip() if response.content else ""
        # An HTML error page says nothing useful in one line.
        if text and not text.lstrip().startswith("<"):
            return [Problem(_clip(text))]
        return []
    return problems(body)


def describe(problems_: list[Problem]) -> str:
    parts = []
    for problem in problems_:
        parts.append(f"{problem.field}: {problem.message}" if problem.field else problem.message)
    return "; ".join(parts)


def _where(request: httpx.Request | None) -> str:
    if request is None:
        return ""
    return f"{request.method} {urlsplit(str(request.url)).path}"


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
    response: httpx.Response,
    *,
    service: str,
    hints: dict[int, str] | None = None,
    context: str | None = None,
) -> CmdaiError:
    """The error for a non-success answer. `hints` overrides the default hint per status.

    The one rule of cmdai's exit codes: the service answered and refused, any 4xx (429
    included: a caller gives up on it only once its retries are spent) -> RemoteRefused
    (exit 5), carrying the status; 5xx -> RemoteUnreachable (exit 6), since the service
    is not available to do the work, just as when it cannot be reached.
    """
    status = response.status_code
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:
        request = None
    where = _where(request)
    found = response_problems(response)
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


def error_for_exception(
    exc: httpx.HTTPError | OSError, *, service: str, context: str | None = None
) -> CmdaiError:
    """The error for a request that got no answer (connection, TLS, time-out, protocol).

    Always a RemoteUnreachable (exit 6); typed as CmdaiError like `error_for_response` so
    that callers can hold either answer in one variable.
    """
    request: httpx.Request | None = None
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:
            request = None
    where = _where(request)
    if isinstance(exc, httpx.TimeoutException):
        what = "did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not be reached"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "closed the connection without a valid answer"
    else:
        what = "could not be reached"
    host = urlsplit(str(request.url)).netloc if request is not None else ""
    message = f"{service}{' at ' + host if host else ''} {what}"
    if where:
        message += f" ({where})"
    if context:
        message += f"; {context}"
    cause = str(exc).strip()
    if cause:
        message += f": {_clip(cause)}"
    return RemoteUnreachable(
        redact.scrub(message), hint="check the host and your network, then try again"
    )
