"""The Source Debugger's page and who may see it: assets, their headers, the token.

The page is plain HTML, CSS and JavaScript shipped in the package (`receiver/ui/`), no
CDN and no build step. Every answer under `/cmdai/ui/` carries a Content-Security-Policy
that allows scripts, styles and connections from the receiver alone, and no inline
script: a message's values are data, which the page only ever puts in as text.

`Gate`: bound to loopback, the page and the inspection API are open (as the Tracking
API is) to requests that name a loopback host (a page on another name that resolves
to 127.0.0.1 is refused, so that a web site cannot read the messages by rebinding its
name); bound elsewhere, or with `--ui-token`, they need the token: `?token=` once
(the page then gets it as a cookie and drops it from its address), the cookie, or
`Authorization: Bearer`. The Tracking API never needs it, as Segment's does not.
"""

from __future__ import annotations

import functools
import hmac
from importlib import resources
from urllib.parse import parse_qsl, urlencode

from cmdai_cli.receiver.exchange import Request, Response, json_response
from cmdai_cli.values import is_loopback

UI_PATH = "/cmdai/ui/"
COOKIE = "cmdai_ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "favicon.svg": ("favicon.svg", "image/svg+xml"),
}


@functools.cache
def asset(name: str) -> bytes:
    """A file of the page, read once from the package."""
    return resources.files("cmdai_cli.receiver").joinpath("ui").joinpath(name).read_bytes()


def wants_page(request: Request) -> bool:
    """A browser's `GET /`: it is sent to the page; every other client gets the JSON."""
    accept = request.headers.get("Accept") or ""
    return request.method == "GET" and "text/html" in accept


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(303, b"", {"Location": location, **(headers or {})}, content_type="text/plain")


def answer_ui(request: Request, path: str) -> Response:
    """A file of the page (`path` is below /cmdai/ui/), or 404."""
    if request.method not in ("GET", "HEAD"):
        body = {"success": False, "code": "method_not_allowed", "message": "use GET"}
        return json_response(405, body, PAGE_HEADERS)
    found = ASSETS.get(path)
    if found is None:
        body = {"success": False, "code": "not_found", "message": "no such file of the page"}
        return json_response(404, body, PAGE_HEADERS)
    name, kind = found
    return Response(200, asset(name), PAGE_HEADERS, content_type=kind)


class Gate:
    """Who may use the page and the inspection API: see the module's text."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def _valid(self, given: str | None) -> bool:
        return (
            self.token is not None
            and given is not None
            and hmac.compare_digest(given.encode(), self.token.encode())
        )

    def check(self, request: Request) -> tuple[str, Response | None]:
        """The target with any `token` taken out, and the answer when the request may
        not go on (a refusal, or the page's redirect that turns the token into a cookie)."""
        path, _, query = request.target.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        given = [value for name, value in pairs if name == "token"]
        if given:
            rest = urlencode([(name, value) for name, value in pairs if name != "token"])
            target = path + ("?" + rest if rest else "")
        else:
            target = request.target
        if self.token is None:
            if not _loopback_host(request.headers.get("Host")):
                return target, _refuse(403, "forbidden", "ask for the page by a loopback address")
            return target, None
        if given and self._valid(given[-1]):
            if path.startswith(UI_PATH):
                cookie = f"{COOKIE}={self.token}; Path=/cmdai/; HttpOnly; SameSite=Strict"
                return target, redirect(target, {"Set-Cookie": cookie})
            return target, None
        if self._valid(_cookie(request.headers.get("Cookie"))):
            return target, None
        auth = request.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer " and self._valid(auth[7:].strip()):
            return target, None
        return target, _refuse(
            401, "unauthorized", "give the token `cmdai listen` printed: ?token=... or Bearer"
        )


def _refuse(status: int, code: str, message: str) -> Response:
    return json_response(status, {"success": False, "code": code, "message": message})


def _cookie(header: str | None) -> str | None:
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _loopback_host(host: str | None) -> bool:
    """Whether a Host header names a loopback address (a client without one is let in:
    only browsers matter here, and they always send it)."""
    if not host:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.startswith("[") and "]" in name:
        name = name[1 : name.index("]")]
    return is_loopback(name)
