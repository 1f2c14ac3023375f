"""destination configure --apply compares and changes only the settings cmdai manages.

A Webhooks subscription made or edited in Segment's UI also holds `batch_keys`,
`batch_size` and `enable_batching`; a re-apply must neither see them as a difference
nor strip them.
"""

from __future__ import annotations

import json
from typing import Any

from cmdai_cli.destination.changes import managed_settings_change
from tests.fake_public_api import WEBHOOKS, FakePublicApi
from tests.test_destination import HOOK, SEND, api, source_id

__all__ = ["api"]

UI_SETTINGS = {
    "batch_keys": ["url", "method", "headers"],
    "batch_size": 100,
    "enable_batching": True,
}


def send_subscription(api: FakePublicApi) -> dict[str, Any]:
    (dest,) = api.on_source(source_id(api), WEBHOOKS)
    (sub,) = [s for s in api.subs_of(dest["id"]) if s["actionId"] == SEND]
    return sub


def test_settings_added_in_segment_are_not_a_difference(cli: Any, api: FakePublicApi) -> None:
    assert (
        cli(
            "destination", "configure", "--webhook-url", HOOK, "--source", "my-site", "--apply"
        ).exit_code
        == 0
    )
    sub = send_subscription(api)
    sub["settings"].update(UI_SETTINGS)
    before = len(api.writes())
    result = cli("destination", "configure", "--webhook-url", HOOK, "--apply")
    assert result.exit_code == 0, result.stderr
    assert api.writes()[before:] == []
    shown = json.loads(cli("destination", "show", "--remote", "--json").stdout)
    assert shown["in_sync"] is True and shown["differences"] == []


def test_a_changed_managed_field_keeps_the_others(cli: Any, api: FakePublicApi) -> None:
    cli("destination", "configure", "--webhook-url", HOOK, "--source", "my-site", "--apply")
    sub = send_subscription(api)
    sub["settings"].update(UI_SETTINGS)
    before = len(api.writes())
    other = "https://hooks.example.com/cmdai/other"
    result = cli("destination", "configure", "--webhook-url", other, "--apply")
    assert result.exit_code == 0, result.stderr
    writes = api.writes()[before:]
    assert [w.method for w in writes] == ["PATCH"]
    sent = writes[0].body["input"]["settings"]
    assert sent["url"] == other
    assert {k: sent[k] for k in UI_SETTINGS} == UI_SETTINGS
    assert {k: sub["settings"][k] for k in UI_SETTINGS} == UI_SETTINGS
    assert sub["settings"]["url"] == other


def test_managed_settings_change_unit() -> None:
    desired = {"url": "u", "method": "POST", "data": {"@path": "$."}}
    assert managed_settings_change({**desired, **UI_SETTINGS}, desired) is None
    change = managed_settings_change({"url": "old", **UI_SETTINGS}, desired)
    assert change is not None
    settings, fields = change
    assert settings == {**UI_SETTINGS, **desired}
    assert [f["field"] for f in fields] == ["settings.url", "settings.method", "settings.data"]
    # A managed key present with null differs from one absent only in what is shown.
    assert managed_settings_change(None, {"k": None}) == (
        {"k": None},
        [{"field": "settings.k", "remote": None, "desired": None}],
    )
