"""What the receiver answers: a request in, one `Response` out.

The transport (`server`) hands every complete request here, on its event loop (so
nothing here may block: slow work goes after the answer, see `Response.then`); the
`Store` keeps what is accepted. New endpoints go in `Routes.answer`, and need to know
nothing of sockets or timeouts.

- /cmdai/...: the inspection API (`inspection`), with CORS and preflight as below; the
  Source Debugger's page (`ui`, behind its `Gate`), views (`debugger`) and live
  stream (`stream`); a browser's `GET /` is sent to the page
- POST to Segment's Tracking API paths, analytics.js's short ones included: answered as
  Segment does (`protocol`); analytics.js's metrics are read and acknowledged
- OPTIONS, GET health and the CDN settings document, with CORS on every answer
  (`browser`); anything else: 404, or 405 for a method no route takes
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from cmdai_cli.receiver.browser import answer_other, cors_headers
from cmdai_cli.receiver.conformance import CatalogueCheck
from cmdai_cli.receiver.debugger import VIEWS, Planned, answer_view
from cmdai_cli.receiver.exchange import Request, Response, json_response
from cmdai_cli.receiver.inspection import PREFIX, inspect
from cmdai_cli.receiver.protocol import (
    BATCH_PATHS,
    METRICS_PATH,
    SINGLE_PATHS,
    Rejected,
    basic_auth_key,
    decode_body,
    now_stamp,
    parse_encoded,
)
from cmdai_cli.receiver.store import Linked, Parsed, Store
from cmdai_cli.receiver.stream import OPENING, Feed
from cmdai_cli.receiver.ui import PAGE_HEADERS, UI_PATH, Gate, answer_ui, redirect, wants_page

log = logging.getLogger("cmdai")


class Routes:
    """The answers of a receiver whose store is `store`.

    `own_url` is the receiver's URL, known once its port is bound: the settings
    document names it when a request's Host cannot be used.
    """

    def __init__(
        self,
        store: Store,
        write_key: str | None,
        reject_wrong_key: bool,
        *,
        ui_token: str | None = None,
        planned: Planned | None = None,
    ) -> None:
        self.store = store
        self.write_key = write_key
        self.reject_wrong_key = reject_wrong_key
        self.own_url = ""
        self.gate = Gate(ui_token)
        self.planned = planned
        self.catalogue = CatalogueCheck(store)
        # `listen --forward-to`: takes each acknowledged request; must not block.
        # Called with the request's target, raw body, Content-Encoding, Authorization,
        # messages and arrival time.
        self.forward: Callable[[str, bytes, str | None, str | None, Parsed, str], Linked] | None = (
            None
        )

    def answer(self, request: Request) -> Response:
        """The answer to `request`, after storing what it brought."""
        method = request.method
        headers = request.headers
        # The inspection API too: a test page may ask it what its own calls brought.
        cors = cors_headers(
            headers.get("Origin"),
            headers.get("Access-Control-Request-Headers"),
            preflight=method == "OPTIONS",
        )
        target = request.target
        if target.startswith(PREFIX):
            if method == "OPTIONS":
                return Response(200, headers=cors)
            target, refused = self.gate.check(request)
            if refused is not None:
                return refused
            if target.split("?", 1)[0] == UI_PATH[:-1]:
                return redirect(UI_PATH)
            if target.startswith(UI_PATH):
                return answer_ui(request, target.split("?", 1)[0][len(UI_PATH) :])
            route, _, query = target[len(PREFIX) :].partition("?")
            if method == "GET" and route == "stream":
                return Response(
                    200,
                    OPENING,
                    PAGE_HEADERS,
                    content_type="text/event-stream",
                    stream=Feed(self.store),
                )
            if method == "GET" and route == "catalogue":
                return json_response(200, self.catalogue.answer(), cors)
            if method == "GET" and route in VIEWS:
                status, view = answer_view(self.store, route, query, self.planned)
                # The page's own: no CORS, so no other site's page can read them.
                return json_response(status, view, PAGE_HEADERS)
            status, body = inspect(self.store, method, target)
            # A reset whose body was refused is still a reset; the connection goes, though.
            close = request.refused is not None
            if isinstance(body, bytes):
                return Response(status, body, cors, close)
            return json_response(status, body, cors, close=close)
        path = target.split("?", 1)[0].rstrip("/")
        if path == "" and wants_page(request):
            return redirect(UI_PATH)
        if method != "POST":
            return answer_other(request, path, self.write_key, self.own_url, cors)
        return self.tracking_api(request, path, cors)

    def tracking_api(self, request: Request, path: str, cors: Mapping[str, str]) -> Response:
        """A POST to Segment's Tracking API: refused as Segment would, or stored, then 200."""
        store = self.store
        store.count_request()
        headers = request.headers
        try:
            if path == METRICS_PATH:
                # analytics.js's delivery metrics: read and acknowledged, not messages.
                request.read_body()
                return Response(200, headers=cors)
            if path not in BATCH_PATHS and path not in SINGLE_PATHS:
                raise Rejected(404, "not_found", f"no such endpoint: {path or '/'}", close=True)
            body = decode_body(request.read_body(), headers.get("Content-Encoding"))
            now = now_stamp()
            auth_key = basic_auth_key(headers.get("Authorization"))
            messages = parse_encoded(
                path, body, self.write_key, auth_key, now, self.reject_wrong_key
            )
        except Rejected as rejected:
            return self.refuse(rejected, cors)
        try:
            store.write(messages)
        except OSError as exc:
            log.warning("could not store a request: %s", exc.strerror)
            return self.refuse(Rejected(500, "server_error", "could not store the messages"), cors)
        intake = None
        if self.forward is not None:
            intake = self.forward(
                request.target,
                request.body,
                headers.get("Content-Encoding"),
                headers.get("Authorization"),
                messages,
                now,
            )
        # The client builds its next batch while the messages are kept.
        return Response(200, headers=cors, then=store.accept(path, messages, now, intake))

    def refuse(self, rejected: Rejected, cors: Mapping[str, str]) -> Response:
        """A refusal as Segment words it, counted."""
        self.store.count_rejected(rejected.status)
        body = {"success": False, "code": rejected.code, "message": rejected.message}
        return json_response(rejected.status, body, cors, close=rejected.close)
