"""A write key checked against its source on Segment's CDN: for connect, doctor, send-test.

The Tracking API takes any key (see `cmdai_cli.segment.cdn`), so these are the only
checks that tell a real key from a mistyped one. `connect` verifies before it stores:
an unknown key (404) is not stored (exit 5); a CDN that cannot be asked leaves the key
stored with a warning; `verify=False` skips the check. The region is learned from the
source's Tracking API host when none is given. `doctor` turns the same answer into
checks: the key's source, the Command AI destination on it, and the region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from cmdai_cli import probe, redact
from cmdai_cli.errors import ExitCode, RemoteRefused
from cmdai_cli.http_policy import AnswerTooLarge
from cmdai_cli.profile import DEFAULTS, Resolved, Store, save_profile
from cmdai_cli.segment.cdn import KeyCheck, check_write_key
from cmdai_cli.segment.messages import REGION_HOSTS
from cmdai_cli.segment.sender import host_for
from cmdai_cli.values import check_url
from cmdai_cli.values import check_write_key as valid_key

UNKNOWN_KEY_HINT = (
    "copy the write key again from Segment (Connections > Sources > your source > "
    "Settings > API Keys); --no-verify stores it unchecked"
)
Status = Literal["pass", "fail", "skip"]
# (check name, status, what was seen, hint)
Finding = tuple[str, Status, str, str | None]


@dataclass(frozen=True)
class ConnectRequest:
    """A write key to check and store. `settings` are the run's, resolved with --region,
    --host and --cdn-host: those given as flags are stored with the key."""

    settings: Resolved
    # Kept out of repr: a secret is never printed in full.
    write_key: str = field(repr=False)
    verify: bool = True
    send_test: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class Connected:
    """What `connect` stored, what the CDN said of the key (None: not asked), and what
    became of the test event (None: not sent)."""

    profile: str
    path: str
    write_key: str
    region: str
    region_from: str
    segment_host: str
    cdn_host: str
    check: KeyCheck | None
    sent: probe.Sent | None = None

    def as_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "profile": self.profile,
            "path": self.path,
            "write_key": self.write_key,
            "region": self.region,
            "segment_host": self.segment_host,
            "key_check": self.check.as_dict() if self.check else {"status": "skipped"},
        }
        if self.sent is not None:
            result["send_test"] = self.sent.as_json()
        return result

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.sent is None else self.sent.exit_code

    @property
    def problem(self) -> str | None:
        return None if self.sent is None else self.sent.problem


def connect(request: ConnectRequest) -> Connected:
    """Check the write key on the CDN, store it (with what was learned) in the profile,
    and with `send_test` send the test event to the source."""
    settings, write_key = request.settings, request.write_key
    given = {name for name, source in settings.sources.items() if source == "flag"}
    valid_key(write_key)
    redact.register(write_key)
    cdn_host = str(settings.get("cdn_host"))
    check = check_write_key(write_key, cdn_host, request.timeout) if request.verify else None
    if check is not None and check.status == "unknown":
        raise RemoteRefused(
            f"no Segment source has this write key ({check.detail}); it was not stored",
            status=404,
            hint=UNKNOWN_KEY_HINT,
        )
    region = settings.get("region") if "region" in given else None
    region_from = "flag" if region is not None else "profile"
    learned = check.settings.region if check and check.settings else None
    if region is None and "segment_host" not in given and learned is not None:
        region, region_from = learned, "cdn"
    updates: dict[str, Any] = {"write_key": write_key}
    if region is not None:
        updates["region"] = region
    if "segment_host" in given:
        updates["segment_host"] = check_url(settings.values["segment_host"])
    if "cdn_host" in given:
        updates["cdn_host"] = cdn_host
    stored = save_profile(Store(settings.path), settings.profile, updates)
    region_used = stored.region or DEFAULTS["region"]
    sent = None
    if request.send_test:
        # Sent as the profile now says, under the environment's settings.
        send_region = settings.get("region") if settings.sources["region"] == "env" else region_used
        host = (
            settings.get("segment_host") if settings.sources["segment_host"] != "region" else None
        )
        message, event = probe.build()
        sent = probe.send_to(
            message,
            event,
            write_key=write_key,
            host=host_for(send_region, host),
            timeout=request.timeout,
        )
    return Connected(
        profile=settings.profile,
        path=str(settings.path),
        write_key=str(redact.mask(write_key)),
        region=region_used,
        region_from=region_from if stored.region else "default",
        segment_host=stored.segment_host or REGION_HOSTS[region_used],
        cdn_host=cdn_host,
        check=check,
        sent=sent,
    )


def describe(check: KeyCheck) -> str:
    """One line about the CDN's verdict, for people."""
    if check.status == "unknown":
        return (
            f"write key NOT verified: {check.detail}; Segment accepts events for it and drops them"
        )
    if check.status == "unverified":
        return f"write key not verified: {check.detail}"
    settings = check.settings
    assert settings is not None
    names = ", ".join(d.name or d.creation_name for d in settings.destinations) or "none"
    return (
        f"write key verified on {check.cdn_host}: sends to {settings.api_host or '?'}; "
        f"device-mode destinations enabled: {names}"
    )


# ---------------------------------------------------------------------- doctor


def doctor_findings(resolved: Resolved, *, timeout: float) -> list[Finding]:
    """The source checks: the key's source, the Command AI destination, the region."""
    key = resolved.get("write_key")
    cdn_host = str(resolved.get("cdn_host"))
    if not key:
        why = "not checked without a write key"
        return [("source", "skip", why, None), *_skipped(why)]
    try:
        check = check_write_key(key, cdn_host, timeout)
    except AnswerTooLarge as exc:
        # A check among others: the report goes on, the source check failed.
        return [("source", "fail", exc.message, exc.hint), *_skipped("the source was not read")]
    if check.status == "unknown":
        detail = f"no Segment source has this write key ({check.detail})"
        return [("source", "fail", detail, UNKNOWN_KEY_HINT), *_skipped("no source to check")]
    if check.status == "unverified" or check.settings is None:
        hint = "check --cdn-host ($CMDAI_CDN_HOST) and the network"
        return [("source", "fail", check.detail, hint), *_skipped("the source was not read")]
    return [
        ("source", "pass", describe(check), None),
        _destination(resolved, check),
        _region(resolved, check),
    ]


def _skipped(why: str) -> list[Finding]:
    return [("command ai destination", "skip", why, None), ("region", "skip", why, None)]


def _destination(resolved: Resolved, check: KeyCheck) -> Finding:
    name = "command ai destination"
    assert check.settings is not None
    found = check.settings.commandai()
    org_id = resolved.get("org_id")
    if found is None:
        detail = "not enabled on the source in device mode"
        if resolved.get("deploy_via_segment"):
            hint = "enable the Command AI destination on the source, or set deploy_via_segment off"
            return (name, "fail", detail, hint)
        return (name, "skip", detail + " (events can still reach Command AI by webhook)", None)
    their = found.settings.get("orgId")
    if org_id is None:
        return (
            name,
            "pass",
            f"enabled, orgId {their!r} (no org_id in the profile to compare)",
            None,
        )
    if str(their) != str(org_id):
        detail = f"enabled with orgId {their!r}, but the profile's org_id is {org_id!r}"
        hint = "fix the destination's Organization ID in Segment, or the profile's org_id"
        return (name, "fail", detail, hint)
    return (name, "pass", f"enabled with orgId {their!r}, as the profile says", None)


def _region(resolved: Resolved, check: KeyCheck) -> Finding:
    name = "region"
    assert check.settings is not None
    api_host, theirs = check.settings.api_host, check.settings.region
    segment_host = str(resolved.get("segment_host"))
    ours = urlsplit(segment_host).netloc.lower()
    if api_host and urlsplit("//" + api_host).netloc.lower() == ours:
        return (name, "pass", f"the source sends to {api_host}, the host in use", None)
    if theirs is None:
        return (name, "skip", f"the source sends to {api_host or 'an unnamed host'}", None)
    if theirs != resolved.get("region"):
        detail = (
            f"the source is in {theirs} ({api_host}), the profile says {resolved.get('region')}"
        )
        return (name, "fail", detail, f"run `cmdai connect --region {theirs}` or --host")
    if urlsplit(segment_host).hostname in _REGION_HOSTNAMES:
        return (name, "pass", f"{theirs}, as the profile says ({api_host})", None)
    return (name, "pass", f"{theirs}; events go to {segment_host} (a host of your own)", None)


_REGION_HOSTNAMES = frozenset(("api.segment.io", "events.eu1.segmentapis.com"))
