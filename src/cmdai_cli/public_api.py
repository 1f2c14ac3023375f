"""A small client for Segment's Public API: auth, media types, pagination, errors, retry.

Success bodies are `{"data": {...}}` and the client returns what is inside `data`; error
bodies are `{"errors": [...]}` and become `cmdai_cli.errors` members through
`http_errors`. A 429 waits as long as Segment says, 5xx and network failures back off;
both follow `retry.RetryPolicy` and so end after a bounded number of tries and seconds.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from cmdai_cli import http_errors, http_policy, redact
from cmdai_cli.errors import ConfigError, RemoteRefused, RemoteUnreachable
from cmdai_cli.retry import NOT_PROCESSED, RetryPolicy, parse_reset, parse_retry_after

SERVICE = "Segment Public API"
STABLE_MEDIA_TYPE = "application/vnd.segment.v1+json"
# Actions subscriptions exist only in the Alpha version of the API.
ALPHA_MEDIA_TYPE = "application/vnd.segment.v1alpha+json"
# Delivery Overview exists only in the Beta version (public-api-sdk-python,
# docs/DeliveryOverviewApi.md: "Accept: application/vnd.segment.v1beta+json").
BETA_MEDIA_TYPE = "application/vnd.segment.v1beta+json"
PAGE_SIZE = 200
MAX_PAGES = 1000
# Up to 5 retries and 2 minutes of waiting: enough for Segment's per-minute write limit.
DEFAULT_POLICY = RetryPolicy(max_retries=5, base_delay=0.5, max_delay=30.0, max_total_wait=120.0)
DEFAULT_TIMEOUT = 15.0
# A command's whole conversation with the Public API ends within this many times its
# --timeout (2 minutes by default: one wait for the per-minute write limit fits).
DEADLINE_FACTOR = 8

HINTS = {
    401: "the Public API token is missing, wrong or expired "
    "(set $CMDAI_PUBLIC_API_TOKEN or the profile's public_api_token, or give --token "
    "where the command has it)",
    403: "the Public API token may not do this: check that it belongs to this workspace "
    "and has write access",
    404: "check the source (id, slug or name) and that the token's workspace holds it",
    409: "Segment already has a conflicting resource; re-running reads the current state "
    "and updates it instead",
    422: "Segment refused the fields named above",
    429: "Segment's rate limit (subscription writes are limited to about 5 a minute); "
    "wait a minute and run the command again: it continues where it stopped",
}


def _data_wait(response: httpx.Response) -> float | None:
    """Segment's own answer to how long to wait: `msBeforeNext` in a 429 body.

    It sits in `data` or, as docs.segmentapis.com's rate-limit section shows, in each
    entry of `errors[]` (`errors[].data.msBeforeNext`); the longest wait wins.
    """
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    holders = [body.get("data")]
    errors = body.get("errors")
    if isinstance(errors, list):
        holders += [e.get("data") for e in errors if isinstance(e, dict)]
    waits = [
        float(value) / 1000.0
        for data in holders
        if isinstance(data, dict)
        for value in [data.get("msBeforeNext")]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    ]
    return max(waits) if waits else None


def server_wait(response: httpx.Response, *, now: float) -> float | None:
    """How long a 429 asks to wait: body first, then `Retry-After`, then the reset header."""
    wait = _data_wait(response)
    if wait is None:
        wait = parse_retry_after(response.headers.get("Retry-After"))
    if wait is None:
        wait = parse_reset(response.headers.get("X-RateLimit-Reset"), now=now)
    return wait


class PublicApi:
    """One workspace's Public API at `host` with a Bearer `token`.

    `sleep`, `clock` and `rng` are injectable so that tests of waiting are instant;
    `on_wait(message)` is told before every wait.
    """

    def __init__(
        self,
        host: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,
        page_size: int = PAGE_SIZE,
        on_wait: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        redact.register(token)
        self.timeout = timeout
        # Seconds from now by which every call must be done (None: only the policy's bounds).
        self.deadline = deadline
        self.monotonic = monotonic
        self._ends = None if deadline is None else monotonic() + deadline
        self.host = host.rstrip("/")
        self.policy = policy or DEFAULT_POLICY
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.page_size = page_size
        self.on_wait = on_wait
        self._client = http_policy.client(
            base_url=self.host,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "cmdai"},
            timeout=timeout,
        )
        self._started = monotonic()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PublicApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        alpha: bool = False,
        media: str | None = None,
    ) -> dict[str, Any]:
        """Send one request (retrying as the policy allows) and return its `data` object.

        `media` names another version's media type (`BETA_MEDIA_TYPE`); `alpha` is short
        for the Alpha one.
        """
        media = media or (ALPHA_MEDIA_TYPE if alpha else STABLE_MEDIA_TYPE)
        headers = {"Accept": media}
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = media
            content = json.dumps(body).encode("utf-8")
        idempotent = method.upper() != "POST"
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                response = http_policy.send(
                    self._client,
                    method,
                    path,
                    service=SERVICE,
                    limit=http_policy.PUBLIC_API_PAGE_LIMIT,
                    seconds=self._time_left(method, path, attempt - 1),
                    params=params,
                    content=content,
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                # A host that cannot be reached (a name that does not resolve, a refused
                # connection) will not be reachable in a second either: only a server
                # that is there (slow, or dropping a connection) is worth another try. A
                # connect that timed out reached nothing: safe to retry whatever the method.
                unsent = isinstance(exc, httpx.ConnectTimeout)
                if isinstance(exc, httpx.ConnectError):
                    raise http_errors.error_for_exception(
                        exc, service=SERVICE, context=self._tried(attempt)
                    ) from None
                decision = self.policy.decide(
                    attempt,
                    waited,
                    network_error=True,
                    idempotent=unsent or idempotent,
                    rng=self.rng,
                )
                reason = decision.reason if not decision.retry else self._past(decision.delay)
                if reason is not None:
                    raise http_errors.error_for_exception(
                        exc, service=SERVICE, context=self._tried(attempt, reason)
                    ) from None
                self._wait(
                    decision.delay,
                    f"no answer from {SERVICE} ({method} {path})",
                    method,
                    path,
                    attempt,
                )
                waited += decision.delay
                continue
            if response.is_success:
                return self._data(response)
            status = response.status_code
            wait = server_wait(response, now=self.clock()) if status == 429 else None
            # Only a busy or rate-limiting service is worth asking again: a 500 is a
            # failure that the same request will meet again.
            decision = self.policy.decide(
                attempt,
                waited,
                status=status,
                idempotent=idempotent and status in NOT_PROCESSED,
                server_wait=wait,
                rng=self.rng,
            )
            reason = decision.reason if not decision.retry else self._past(decision.delay)
            if reason is not None:
                retried = status in (429,) or status >= 500
                context = self._tried(attempt, reason) if retried else None
                raise http_errors.error_for_response(
                    status,
                    response.headers,
                    response.content,
                    service=SERVICE,
                    method=response.request.method,
                    url=str(response.request.url),
                    hints=HINTS,
                    context=context,
                )
            what = "rate limited" if status == 429 else f"answered {status}"
            self._wait(decision.delay, f"{SERVICE} {what} ({method} {path})", method, path, attempt)
            waited += decision.delay

    def _tried(self, attempt: int, reason: str | None = None) -> str:
        """What was tried, as it happened: attempts and seconds since this client began."""
        elapsed = self.monotonic() - self._started
        tried = f"{attempt} attempt{'s' if attempt != 1 else ''} in {elapsed:.1f} s"
        if not attempt:
            tried = f"{elapsed:.1f} s"
        if reason and not reason.startswith("gave up after"):
            return f"gave up after {tried}: {reason}"
        return f"gave up after {tried}"

    def _past(self, delay: float) -> str | None:
        """Why a wait of `delay` seconds is not worth starting: it would end past the
        deadline. None when it is."""
        if self._ends is None or self._ends - self.monotonic() - delay > 0:
            return None
        return (
            f"the next wait ({delay:.1f} s) would pass the overall deadline of "
            f"{self.deadline:g} s ({DEADLINE_FACTOR} x --timeout)"
        )

    def _time_left(self, method: str, path: str, attempt: int, waiting: float = 0.0) -> float:
        """How long the next request may take; RemoteUnreachable when the deadline passed
        or a wait of `waiting` seconds would pass it."""
        if self._ends is None:
            return self.timeout
        left = self._ends - self.monotonic() - waiting
        if left <= 0:
            if waiting:
                why = (
                    f"the next wait ({waiting:.1f} s) would pass the overall deadline of "
                    f"{self.deadline:g} s ({DEADLINE_FACTOR} x --timeout)"
                )
            else:
                why = (
                    f"the overall deadline of {self.deadline:g} s ({DEADLINE_FACTOR} x "
                    "--timeout) has passed"
                )
            raise RemoteUnreachable(f"{SERVICE}: {method} {path}: {self._tried(attempt)}: {why}")
        return min(self.timeout, left)

    def _wait(self, delay: float, why: str, method: str, path: str, attempt: int) -> None:
        # A wait that would end past the deadline is not worth starting.
        self._time_left(method, path, attempt, waiting=delay)
        if self.on_wait is not None:
            self.on_wait(f"{why}; retrying in {delay:.1f} s")
        self.sleep(delay)

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise RemoteRefused(
                f"{SERVICE} answered {response.status_code} to "
                f"{response.request.method} {response.request.url.path} with a body that "
                "is not JSON",
                status=response.status_code,
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise RemoteRefused(
                f"{SERVICE} answered {response.status_code} to "
                f"{response.request.method} {response.request.url.path} without a "
                "'data' object",
                status=response.status_code,
            )
        return data

    def pages(
        self,
        path: str,
        key: str,
        *,
        alpha: bool = False,
        params: Mapping[str, Any] | None = None,
        media: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of list `data.<key>` across all pages of `path`."""
        for data in self.page_data(path, params=params, alpha=alpha, media=media):
            items = data.get(key)
            if items is None:
                items = []
            if not isinstance(items, list):
                raise RemoteRefused(f"{SERVICE}: GET {path}: 'data.{key}' is not a list")
            for item in items:
                if isinstance(item, dict):
                    yield item

    def page_data(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        alpha: bool = False,
        media: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The `data` object of each page of `path`, following `pagination.next`."""
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {**(params or {}), "pagination.count": self.page_size}
            if cursor:
                query["pagination.cursor"] = cursor
            data = self.call("GET", path, params=query, alpha=alpha, media=media)
            yield data
            pagination = data.get("pagination")
            following = pagination.get("next") if isinstance(pagination, dict) else None
            if not following:
                return
            if following in seen:
                raise RemoteRefused(f"{SERVICE}: GET {path}: pagination repeats a cursor")
            seen.add(str(following))
            cursor = str(following)
        raise RemoteRefused(f"{SERVICE}: GET {path}: more than {MAX_PAGES} pages")

    # ------------------------------------------------------------ resources

    def list_sources(self) -> list[dict[str, Any]]:
        return list(self.pages("/sources", "sources"))

    def list_connected_destinations(self, source_id: str) -> list[dict[str, Any]]:
        return list(self.pages(f"/sources/{source_id}/connected-destinations", "destinations"))

    def list_subscriptions(self, destination_id: str) -> list[dict[str, Any]]:
        return list(
            self.pages(f"/destinations/{destination_id}/subscriptions", "subscriptions", alpha=True)
        )

    def get_tracking_plan(self, plan_id: str) -> dict[str, Any]:
        data = self.call("GET", f"/tracking-plans/{quote(plan_id, safe='')}")
        plan = data.get("trackingPlan")
        if not isinstance(plan, dict):
            raise RemoteRefused(f"{SERVICE}: GET /tracking-plans/{plan_id}: no 'trackingPlan'")
        return plan

    def iter_tracking_plan_rules(self, plan_id: str) -> Iterator[dict[str, Any]]:
        # Segment allows 200 rule-listing requests a minute: a 429 is waited out as usual.
        return self.pages(f"/tracking-plans/{quote(plan_id, safe='')}/rules", "rules")


def open_client(
    values: Mapping[str, Any],
    on_wait: Callable[[str], None] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> PublicApi:
    """A client from resolved settings (`api_host`, `public_api_token`).

    Each answer may take `timeout` seconds; everything together `DEADLINE_FACTOR` times that.
    """
    token = values.get("public_api_token")
    if not token:
        raise ConfigError(
            "no Segment Public API token: give --token, set $CMDAI_PUBLIC_API_TOKEN, or "
            "store public_api_token in the profile"
        )
    return PublicApi(
        str(values["api_host"]),
        str(token),
        on_wait=on_wait,
        timeout=timeout,
        deadline=timeout * DEADLINE_FACTOR,
    )
