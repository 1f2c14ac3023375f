"""What analytics.js needs from a receiver besides the Tracking API: CORS and its settings.

analytics.js (`@segment/analytics-next`) runs on a page of another origin, so every
answer carries `Access-Control-Allow-*` headers and a preflight `OPTIONS` is answered:
its requests carry `Authorization` and `Content-Type: text/plain`
(`packages/browser/src/plugins/segmentio/shared-dispatcher.ts`, `createHeaders`), and
the first makes them non-simple.

Before anything else it loads the source's settings from its CDN,
`GET {cdnURL}/v1/projects/{writeKey}/settings` (`packages/browser/src/browser/index.ts`,
`loadCDNSettings`), and sends to `integrations["Segment.io"].apiHost` with its
`protocol` (`packages/browser/src/plugins/segmentio/index.ts`). The receiver serves a
minimal settings document whose `apiHost` points back at itself, so a page whose cdnURL
is the receiver works offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cmdai_cli.receiver.exchange import Request, Response, json_response

SETTINGS_PATH = re.compile(r"^/v1/projects/([^/]+)/settings$")
HEALTH_PATHS = ("", "/", "/health")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_TOKEN_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-, ]*$")
_DEFAULT_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"


# What every request without an Origin (a server library's) is answered with, shared.
_ANY_ORIGIN: Mapping[str, str] = {"Access-Control-Allow-Origin": "*"}


def cors_headers(
    origin: str | None, asked: str | None = None, *, preflight: bool = False
) -> Mapping[str, str]:
    """The `Access-Control-*` headers for an answer to a request from `origin`, whose
    preflight asked for the `asked` headers.

    The origin is echoed rather than `*` so that a page sending credentials (its
    `deliveryStrategy.config.credentials`) is answered too.
    """
    if not origin and not preflight:
        return _ANY_ORIGIN
    answer = {"Access-Control-Allow-Origin": origin or "*"}
    if origin:
        answer["Access-Control-Allow-Credentials"] = "true"
        answer["Vary"] = "Origin"
    if preflight:
        # Echoed when it is a plain header list: the page decides which headers it sends.
        allowed = asked if asked and _TOKEN_LIST.match(asked) else _DEFAULT_HEADERS
        answer["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        answer["Access-Control-Allow-Headers"] = allowed
        answer["Access-Control-Max-Age"] = "600"
    return answer


def api_host(host_header: str | None, fallback: str) -> str:
    """`host:port/v1` for the settings document: the Host the page used to reach us."""
    host = (host_header or "").strip()
    return (host if _HOST.match(host) else fallback) + "/v1"


def settings_document(write_key: str, host: str) -> dict[str, Any]:
    """A source's CDN settings as analytics.js reads them, sending to `host` over http.

    The shape is the one Segment's CDN serves (`CDNSettings` in analytics-next's
    `packages/browser/src/browser/settings.ts`): `integrations` holds only `Segment.io`, so
    no device-mode destination is loaded, and `remotePlugins` is empty. Remote metrics
    are off (`sampleRate` 0) so nothing but the page's own calls arrives.
    """
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": host,
                "protocol": "http",
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def answer_other(
    request: Request, path: str, write_key: str | None, own_url: str, cors: Mapping[str, str]
) -> Response:
    """Everything but a POST: the preflight, health, and the CDN settings document."""
    method = request.method
    if method == "OPTIONS":
        return Response(200, headers=cors)
    if method != "GET":
        body = {"success": False, "code": "method_not_allowed", "message": "use POST"}
        return json_response(405, body, cors, close=True)
    if path in HEALTH_PATHS:
        return json_response(200, {"success": True, "service": "cmdai listen"}, cors)
    found = SETTINGS_PATH.match(path)
    if found is None:
        return json_response(
            404, {"success": False, "code": "not_found", "message": "not found"}, cors
        )
    key = found.group(1)
    if write_key is not None and key != write_key:
        # What Segment's CDN answers for a key no source has.
        message = "no source has this write key"
        return json_response(404, {"success": False, "code": "not_found", "message": message}, cors)
    host = api_host(request.headers.get("Host"), own_url.split("://", 1)[1])
    return json_response(200, settings_document(key, host), cors)
