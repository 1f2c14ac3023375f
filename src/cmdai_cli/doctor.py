"""Health checks for a pipeline: is the set-up usable, and does each service answer?

Each check ends `pass`, `fail` (with a hint), or `skip` (not configured, or not
checkable because an earlier check failed). Nothing here prompts: every input comes
from flags, the environment or the profile, through `profile.resolve`.

The Segment check sends a batch with no messages to `/v1/batch`: Segment answers it
like any batch, so the host, the TLS and the answer's shape are checked without an
event reaching the source. `send_test=True` sends the test event instead. Segment
answers 200 to any write key, so the key itself is checked on Segment's CDN
(`cmdai_cli.source_key`): its source, the Command AI destination on it, its region.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cmdai_cli import probe, profile, redact
from cmdai_cli.commandai import Client
from cmdai_cli.errors import CmdaiError, ConfigError, ExitCode, UsageError
from cmdai_cli.js_json import dumps
from cmdai_cli.profile import ConfigFile, Resolved, Store
from cmdai_cli.public_api import PublicApi
from cmdai_cli.retry import RetryPolicy
from cmdai_cli.segment.messages import REGION_HOSTS
from cmdai_cli.segment.sender import (
    NETWORK_HINT,
    SEGMENT_HOST_HINT,
    host_for,
    not_taken,
    post_batch,
)
from cmdai_cli.source_key import doctor_findings
from cmdai_cli.values import check_url, plural
from cmdai_cli.values import check_write_key as valid_key
from cmdai_cli.workspace.status import events_last_hour

Status = Literal["pass", "fail", "skip"]

DEFAULT_TIMEOUT = 10.0
# Settings that may come as flags, and the flag that gives each.
URL_FLAGS = {
    "segment_host": "--host",
    "cdn_host": "--cdn-host",
    "webhook_url": "--webhook-url",
    "api_host": "--api-host",
}
SOURCE_CHECKS = ("source", "command ai destination", "region")
# Command AI ignores a webhook body without userId, so this probe changes nothing there.
WEBHOOK_PROBE: dict[str, Any] = {"type": "identify", "traits": {}}


@dataclass(frozen=True)
class Check:
    """The result of one check. `detail` says what was seen; `hint` what to do."""

    name: str
    status: Status
    detail: str
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorResult:
    profile: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "profile": self.profile,
            "checks": [check.as_dict() for check in self.checks],
        }

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.FAILURE

    @property
    def problem(self) -> str | None:
        if self.ok:
            return None
        names = ", ".join(check.name for check in self.failed)
        return f"{len(self.failed)} of {len(self.checks)} checks failed: {names}"


def _check(name: str, status: Status, detail: str, hint: str | None = None) -> Check:
    return Check(name, status, redact.scrub(detail), redact.scrub(hint) if hint else None)


# ---------------------------------------------------------------------- the profile file


def check_profile_file(store: Store) -> Check:
    """The file parses and only its owner can read it (and replace it)."""

    name = "profile file"
    path = store.path
    if not path.exists():
        return _check(
            name, "pass", f"no profile file at {path}; settings come from flags and the environment"
        )
    try:
        config: ConfigFile = store.load()
    except CmdaiError as exc:
        return _check(
            name,
            "fail",
            exc.message,
            "fix the file, or move it away and run `cmdai connect` to write a new one",
        )
    problem = loose_permissions(path)
    if problem:
        return _check(
            name,
            "fail",
            f"{path} parses, but {problem}",
            f"chmod 700 {path.parent} && chmod 600 {path}",
        )
    count = len(config.profiles)
    mode = f"{stat.S_IMODE(path.stat().st_mode):o}" if os.name == "posix" else "n/a"
    return _check(
        name,
        "pass",
        f"{path} parses ({count} {plural(count, 'profile')}); permissions {mode}",
    )


def loose_permissions(path: Path) -> str | None:
    """Why the file's permissions are unsafe for a file holding secrets, or None."""
    if os.name != "posix":
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"its permissions are {mode:o}: other users can read the secrets in it"
    dir_mode = stat.S_IMODE(path.parent.stat().st_mode)
    if dir_mode & 0o022:
        return f"its directory's permissions are {dir_mode:o}: other users can replace it"
    return None


# ---------------------------------------------------------------------- settings


def check_write_key(resolved: Resolved) -> Check:

    name = "write key"
    key = resolved.get("write_key")
    source = resolved.sources.get("write_key", "unset")
    if not key:
        return _check(
            name,
            "fail",
            f"no write key is set for profile {resolved.profile!r}",
            "set $CMDAI_WRITE_KEY, or run `cmdai connect`",
        )
    try:
        valid_key(key)
    except UsageError as exc:
        return _check(
            name,
            "fail",
            f"the write key (from {source}) is not usable: {exc}",
            "copy the write key again from Segment > Sources > (source) > Settings",
        )
    return _check(name, "pass", f"{redact.mask(key)} (from {source})")


# ---------------------------------------------------------------------- Segment


def _looks_like_segment(body: str | None) -> bool:
    try:
        data = json.loads(body or "")
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("success") is True


def check_segment(resolved: Resolved, *, send_test: bool, timeout: float) -> Check:
    """A real request to the Tracking API: an empty batch, or the test event."""
    name = "segment host"
    key = resolved.get("write_key")
    try:
        host = host_for(resolved.get("region"), resolved.get("segment_host"))
    except CmdaiError as exc:
        return _check(name, "fail", exc.message, SEGMENT_HOST_HINT)
    if not key:
        return _check(name, "skip", f"{host}: not checked without a write key")
    if send_test:
        return _send_test_event(name, key, host, timeout)
    result = post_batch([], write_key=key, host=host, timeout=timeout)
    if result.status == "accepted":
        if _looks_like_segment(result.message):
            return _check(
                name,
                "pass",
                f"{host} answered HTTP {result.http_status} "
                f"{result.message} to an empty batch (no event sent)",
            )
        return _check(
            name,
            "fail",
            f"{host} answered HTTP {result.http_status}, but not as "
            f"Segment does (body: {result.message or 'empty'})",
            SEGMENT_HOST_HINT,
        )
    if result.status == "refused":
        detail, hint = not_taken(host, result.http_status, str(result.message))
        return _check(name, "fail", detail, hint)
    return _check(
        name,
        "fail",
        f"{host} did not answer: {result.message}",
        NETWORK_HINT,
    )


def _send_test_event(name: str, key: str, host: str, timeout: float) -> Check:

    message, event = probe.build()
    try:
        sent = probe.send_to(message, event, write_key=key, host=host, timeout=timeout)
    except CmdaiError as exc:
        return _check(name, "fail", f"{host}: the test event was not sent: {exc.message}")
    passed, detail, hint = probe.verdict(sent)
    return _check(name, "pass" if passed else "fail", detail, hint)


# ---------------------------------------------------------------------- webhook


WEBHOOK_HINTS = {
    401: "check the webhook shared secret (webhook_shared_secret)",
    403: "check the webhook shared secret (webhook_shared_secret)",
    404: "check the webhook URL Command AI gave you (webhook_url)",
    405: "check the webhook URL Command AI gave you (webhook_url)",
}


def check_webhook(resolved: Resolved, *, timeout: float) -> Check:
    """POST a body without userId (ignored by Command AI) to the webhook URL, signed."""
    name = "webhook"
    url = resolved.get("webhook_url")
    if not url:
        return _check(name, "skip", "no webhook URL configured (webhook_url)")

    body = dumps(WEBHOOK_PROBE)
    secret = resolved.get("webhook_shared_secret") or None
    with Client(timeout) as client:
        answer = client.post_webhook(url, body, secret=secret, service="the Command AI webhook")
    if answer.ok:
        return _check(
            name,
            "pass",
            f"{url} answered HTTP {answer.status} to a body without "
            "userId (which Command AI ignores)",
        )
    if answer.status is None:
        return _check(
            name,
            "fail",
            answer.detail or f"{url} did not answer",
            "check the webhook URL and the network",
        )
    return _check(
        name,
        "fail",
        answer.detail or f"{url} answered HTTP {answer.status}",
        WEBHOOK_HINTS.get(answer.status, "check the webhook URL and shared secret"),
    )


# ---------------------------------------------------------------------- Public API


def check_public_api(resolved: Resolved, *, timeout: float) -> Check:
    """One page of one source: the token works for the host's workspace."""
    name = "public api"
    token = resolved.get("public_api_token")
    if not token:
        return _check(name, "skip", "no Public API token configured (public_api_token)")

    host = str(resolved.get("api_host"))
    # One try: a pipeline wants the answer now, and the next run retries anyway.
    policy = RetryPolicy(max_retries=0, max_total_wait=0.0)
    try:
        with PublicApi(host, token, policy=policy, timeout=timeout, page_size=1) as api:
            api.call("GET", "/sources", params={"pagination.count": 1})
    except CmdaiError as exc:
        return _check(name, "fail", exc.message, exc.hint)
    return _check(name, "pass", f"{host} accepted the token ({redact.mask(token)})")


def check_source_events(resolved: Resolved, *, timeout: float, api_ok: bool) -> Check:
    """Events reached the source in the last hour (the Public API's event volume)."""
    name = "source events"
    token = resolved.get("public_api_token")
    if not token:
        return _check(name, "skip", "no Public API token configured (public_api_token)")
    if not api_ok:
        return _check(name, "skip", "not checked: the Public API check failed")
    try:
        source, count = events_last_hour(
            str(resolved.get("api_host")),
            token,
            source=resolved.get("source"),
            write_key=resolved.get("write_key"),
            timeout=timeout,
        )
    except ConfigError as exc:
        return _check(name, "skip", f"not checked: {exc.message}")
    except CmdaiError as exc:
        return _check(name, "fail", exc.message, exc.hint)
    slug = source.get("slug") or source.get("id")
    if count == 0:
        return _check(
            name,
            "fail",
            f"no event reached source {slug} in the last hour",
            "check that Command AI is connected with this source's write key; "
            "`cmdai send-test` sends one, `cmdai status` shows the last 24 hours",
        )
    return _check(name, "pass", f"{count} events reached source {slug} in the last hour")


# ---------------------------------------------------------------------- all


@dataclass(frozen=True)
class DoctorRequest:
    """What `doctor` checks: the --profile given (None: the active one) and the settings
    given as flags (None: not given).

    Unlike other commands' cores, this one resolves the settings itself: that they
    resolve at all is one of its checks.
    """

    profile: str | None = None
    segment_host: str | None = None
    region: str | None = None
    cdn_host: str | None = None
    webhook_url: str | None = None
    api_host: str | None = None
    send_test: bool = False
    timeout: float = DEFAULT_TIMEOUT


def run(request: DoctorRequest, *, store: Store | None = None) -> DoctorResult:
    """Run every check."""
    profile_flag, send_test, timeout = request.profile, request.send_test, request.timeout
    given: dict[str, Any] = {
        "segment_host": request.segment_host,
        "region": request.region,
        "cdn_host": request.cdn_host,
        "webhook_url": request.webhook_url,
        "api_host": request.api_host,
    }
    region = given.get("region")
    if region is not None and region not in REGION_HOSTS:
        raise UsageError(f"region {region!r} is not one of: {', '.join(REGION_HOSTS)}")
    for key, flag in URL_FLAGS.items():
        if given.get(key) is not None:
            given[key] = check_url(given[key], what=flag)
    flags = given
    store = store or profile.Store()
    report = DoctorResult(profile=None)
    file_check = check_profile_file(store)
    report.checks.append(file_check)
    try:
        resolved = profile.resolve(profile_flag, flags, store=store)
    except CmdaiError as exc:
        why = "the settings do not resolve"
        if file_check.ok:
            report.checks.append(_check("settings", "fail", exc.message, exc.hint))
        else:
            why = "the profile file does not parse"
        for name in (
            "write key",
            "segment host",
            *SOURCE_CHECKS,
            "webhook",
            "public api",
            "source events",
        ):
            report.checks.append(_check(name, "skip", f"not checked: {why}"))
        return report
    report.profile = resolved.profile
    report.checks.append(check_write_key(resolved))
    report.checks.append(check_segment(resolved, send_test=send_test, timeout=timeout))

    for name, status, detail, hint in doctor_findings(resolved, timeout=timeout):
        report.checks.append(_check(name, status, detail, hint))
    report.checks.append(check_webhook(resolved, timeout=timeout))
    api_check = check_public_api(resolved, timeout=timeout)
    report.checks.append(api_check)
    report.checks.append(
        check_source_events(resolved, timeout=timeout, api_ok=api_check.status == "pass")
    )
    return report
