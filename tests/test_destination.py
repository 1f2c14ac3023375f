from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdai_cli import destination, public_api
from cmdai_cli.errors import DataError, UsageError
from cmdai_cli.retry import RetryPolicy
from tests.conftest import SHARED_SECRET, TOKEN
from tests.fake_public_api import COMMANDAI, WEBHOOKS, FakePublicApi, running

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

IDENTIFY = "pvLKevrkEtiUZX3ej5FX8j"
TRACK = "5cVhYfBJYs4sCSvLLoahGc"
SEND = "nFPnRozhz1mh4Gbx4MLvT5"
HOOK = "https://hooks.example.com/cmdai/segment"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePublicApi]:
    # Real waits are tested in test_public_api with an injected sleep; here they are short.
    monkeypatch.setattr(
        public_api,
        "DEFAULT_POLICY",
        RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01, max_total_wait=1.0),
    )
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    with running(TOKEN) as fake:
        fake.add_source("other-site", "Other")
        fake.add_source("my-site", "My Site")
        monkeypatch.setenv("CMDAI_API_HOST", fake.url)
        yield fake


def stored(config_path: Path) -> dict[str, object]:
    data = tomllib.loads(config_path.read_text())
    profile: dict[str, object] = data["profiles"]["default"]
    return profile


def source_id(api: FakePublicApi) -> str:
    return next(s["id"] for s in api.sources if s["slug"] == "my-site")


# ---------------------------------------------------------------- the desired configuration


def test_org_id_rule() -> None:
    assert destination.check_org_id(" abc-123_X ") == "abc-123_X"
    for bad in ("", "   ", "has space", "a/b", "a.b", "x" * 65, "é"):
        with pytest.raises(UsageError):
            destination.check_org_id(bad)


def test_the_command_ai_destination_in_segment_terms() -> None:
    shown = destination.commandai_destination("org1", True).shown()
    assert shown["destination"] == {
        "metadataId": COMMANDAI,
        "name": "Command AI",
        "enabled": True,
        "settings": {"orgId": "org1", "deploy": True},
    }
    identify, track = shown["subscriptions"]
    assert (identify["actionId"], identify["trigger"]) == (IDENTIFY, 'type = "identify"')
    assert identify["settings"] == {
        "userId": {"@path": "$.userId"},
        "hmac": {"@path": "$.context.CommandBar.hmac"},
        "formFactor": {"@path": "$.context.CommandBar.formFactor"},
        "traits": {"@path": "$.traits"},
    }
    assert (track["actionId"], track["trigger"]) == (TRACK, 'type = "track"')
    assert track["settings"] == {
        "event_name": {"@path": "$.event"},
        "event_metadata": {"@path": "$.properties"},
    }


def test_webhook_data_is_built_as_segment_directives() -> None:
    table = {
        "userId": "$.userId",
        "user_property.plan": "$.properties.plan",
        "user_property_event": "extension installed",
    }
    dest = destination.webhook_destination(HOOK, None, table, 'type = "track"')
    (send,) = dest.subscriptions
    assert send.action_id == SEND and send.trigger == 'type = "track"'
    assert send.settings == {
        "url": HOOK,
        "method": "POST",
        "data": {
            "userId": {"@path": "$.userId"},
            "user_property.plan": {"@path": "$.properties.plan"},
            "user_property_event": "extension installed",
        },
    }
    whole = destination.webhook_destination(HOOK, None, {}, None)
    assert whole.subscriptions[0].settings["data"] == {"@path": "$."}
    assert whole.subscriptions[0].trigger == 'type = "identify"'


def test_a_custom_mapping_must_map_user_id_and_is_warned_about_idle_keys() -> None:
    with pytest.raises(DataError) as info:
        destination.check_webhook_mapping({"traits": "$.traits"}, source="m.toml")
    assert info.value.field == "userId" and "m.toml" in info.value.message
    _, warnings = destination.check_webhook_mapping(
        {
            "userId": "$.userId",
            "traits": "$.traits",
            "user_property.plan": "$.properties.plan",
            "user_property_event": "x",
            "email": "$.traits.email",
        },
        source="m.toml",
    )
    assert len(warnings) == 1 and "'email' has no effect" in warnings[0]


# ---------------------------------------------------------------- configure, locally


def test_configure_stores_and_prints_the_configuration(cli, config_path: Path) -> None:
    result = cli("destination", "configure", "--org-id", "org42", "--source", "my-site")
    assert result.exit_code == 0, result.stderr
    assert stored(config_path) == {"org_id": "org42", "source": "my-site"}
    assert "catalog id 638f843c4520d424f63c9e51" in result.stdout
    assert 'settings: orgId = "org42", deploy = false' in result.stdout
    assert "identifyUser" in result.stdout and 'on type = "track"' in result.stdout

    result = cli("destination", "configure", "--no-deploy-via-segment", "--json")
    data = json.loads(result.stdout)
    assert stored(config_path)["deploy_via_segment"] is False
    assert data["apply"] is None
    (dest,) = data["destinations"]
    assert dest["kind"] == "commandai"
    assert dest["destination"]["settings"] == {"orgId": "org42", "deploy": False}
    assert [s["action"] for s in dest["subscriptions"]] == ["identifyUser", "trackEvent"]


def test_a_bad_org_id_is_a_usage_error_and_stores_nothing(cli, config_path: Path) -> None:
    result = cli("destination", "configure", "--org-id", "not an id")
    assert result.exit_code == 2
    assert "org ID 'not an id' is not valid" in result.stderr
    assert not config_path.exists()


def test_a_request_that_does_not_check_out_whole_stores_nothing(cli, config_path: Path) -> None:
    # Each flag is valid, but the Command AI destination needs an org ID and none is set.
    result = cli("destination", "configure", "--deploy-via-segment", "--source", "my-site")
    assert result.exit_code == 3
    assert "no org ID is set" in result.stderr
    assert not config_path.exists()


def test_nothing_to_configure(cli) -> None:
    result = cli("destination", "configure")
    assert result.exit_code == 2
    assert "nothing to configure" in result.stderr


def test_dry_run_needs_apply(cli) -> None:
    assert cli("destination", "configure", "--org-id", "o1", "--dry-run").exit_code == 2


# ---------------------------------------------------------------- configure --apply


def test_first_run_creates_and_second_changes_nothing(cli, api: FakePublicApi) -> None:
    first = cli("destination", "configure", "--org-id", "org42", "--source", "my-site", "--apply")
    assert first.exit_code == 0, first.stderr
    (dest,) = api.on_source(source_id(api), COMMANDAI)
    assert dest["settings"] == {"orgId": "org42", "deploy": False} and dest["enabled"]
    subs = {s["actionId"]: s for s in api.subs_of(dest["id"])}
    assert set(subs) == {IDENTIFY, TRACK}
    assert subs[IDENTIFY]["trigger"] == 'type = "identify"' and subs[IDENTIFY]["enabled"]
    assert subs[TRACK]["settings"]["event_name"] == {"@path": "$.event"}
    assert len(api.writes()) == 3
    assert "Applied 3 change(s)." in first.stdout

    second = cli("destination", "configure", "--apply", "--json")
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["apply"]["requests"] == []
    assert len(api.writes()) == 3
    assert len(api.on_source(source_id(api), COMMANDAI)) == 1
    assert len(api.subscriptions) == 2


def test_a_second_run_changes_only_what_differs(cli, api: FakePublicApi) -> None:
    cli("destination", "configure", "--org-id", "org42", "--source", "my-site", "--apply")
    (dest,) = api.on_source(source_id(api), COMMANDAI)
    track = next(s for s in api.subs_of(dest["id"]) if s["actionId"] == TRACK)
    track["trigger"] = 'type = "page"'  # changed by hand in Segment
    before = len(api.writes())

    result = cli("destination", "configure", "--org-id", "org43", "--apply")
    assert result.exit_code == 0, result.stderr
    writes = api.writes()[before:]
    assert [(w.method, w.path) for w in writes] == [
        ("PATCH", f"/destinations/{dest['id']}"),
        ("PATCH", f"/destinations/{dest['id']}/subscriptions/{track['id']}"),
    ]
    assert writes[0].body == {"settings": {"orgId": "org43", "deploy": False}}
    assert writes[1].body == {"input": {"trigger": 'type = "track"'}}
    assert writes[1].headers["content-type"] == "application/vnd.segment.v1alpha+json"
    assert api.destinations[dest["id"]]["settings"]["orgId"] == "org43"


def test_dry_run_sends_no_write_and_prints_each_request(
    cli, api: FakePublicApi, config_path: Path
) -> None:
    result = cli(
        "destination",
        "configure",
        "--org-id",
        "org42",
        "--source",
        "my-site",
        "--apply",
        "--dry-run",
    )
    assert result.exit_code == 0, result.stderr
    assert api.writes() == []
    assert api.requests, "a dry run still reads"
    assert not config_path.exists()
    lines = [line for line in result.stdout.splitlines() if line.startswith("  POST ")]
    assert len(lines) == 3
    assert '"orgId": "org42"' in lines[0]
    assert "/destinations/<id of the new commandai destination>/subscriptions" in lines[1]
    assert "Dry run: 3 request(s) would be sent; none was." in result.stdout


def test_a_part_way_failure_says_what_was_done_and_a_rerun_completes(
    cli, api: FakePublicApi
) -> None:
    api.fail("POST", r"/destinations/[^/]+/subscriptions", 500)
    args = ("destination", "configure", "--org-id", "org42", "--source", "my-site", "--apply")
    failed = cli(*args)
    assert failed.exit_code == 1
    assert "stopped part-way" in failed.stderr
    assert "Done: create the Command AI destination." in failed.stderr
    assert "identifyUser subscription; create the Command AI destination's trackEvent" in (
        failed.stderr
    )
    assert len(api.destinations) == 1 and not api.subscriptions

    before = len(api.writes())
    again = cli(*args, "--json")
    assert again.exit_code == 0, again.stderr
    assert [w.method for w in api.writes()[before:]] == ["POST", "POST"]
    assert len(api.destinations) == 1 and len(api.subscriptions) == 2


def test_part_way_failure_in_json_lists_what_was_sent(cli, api: FakePublicApi) -> None:
    api.fail(
        "POST",
        r"/destinations/[^/]+/subscriptions",
        422,
        body={
            "errors": [
                {"type": "validation", "message": "bad FQL", "field": "trigger"},
            ]
        },
    )
    result = cli(
        "destination", "configure", "--org-id", "o1", "--source", "my-site", "--apply", "--json"
    )
    assert result.exit_code == 1
    sent = [r["sent"] for r in json.loads(result.stdout)["apply"]["requests"]]
    assert sent == [True, False, False]
    assert "trigger: bad FQL" in result.stderr


# Exit 5: the Public API answered and refused (any 4xx, 429 once the retries are spent).
# Exit 6: it could not be reached, timed out, or kept failing with 5xx.
@pytest.mark.parametrize(
    ("method", "path", "status", "body", "code", "words"),
    [
        (
            "POST",
            "/destinations",
            400,
            {"errors": [{"type": "bad-request", "message": "unreadable"}]},
            5,
            "answered 400 Bad Request to POST /destinations: unreadable",
        ),
        (
            "GET",
            "/sources",
            401,
            {"errors": [{"type": "unauthorized", "message": "bad"}]},
            5,
            "hint: the Public API token is missing",
        ),
        (
            "GET",
            "/sources",
            403,
            {"errors": [{"type": "forbidden", "message": "no"}]},
            5,
            "may not do this",
        ),
        (
            "POST",
            "/destinations",
            409,
            {"errors": [{"type": "conflict", "message": "exists"}]},
            5,
            "answered 409 Conflict to POST /destinations: exists",
        ),
        (
            "POST",
            "/destinations",
            422,
            {
                "errors": [
                    {"type": "validation", "message": "is required", "field": "settings.orgId"},
                    {"type": "validation", "message": "unknown", "field": "metadataId"},
                ]
            },
            5,
            "invalid settings.orgId: is required; metadataId: unknown",
        ),
        ("GET", "/sources", 429, {"data": {"msBeforeNext": 1}}, 5, "gave up after 3 attempts"),
        ("GET", "/sources", 500, None, 6, "answered 500 Internal Server Error"),
        ("GET", "/sources", 503, None, 6, "answered 503 Service Unavailable"),
        ("POST", "/destinations", 503, None, 6, "answered 503 Service Unavailable"),
    ],
)
def test_each_error_answer_is_a_clear_message_and_exit_code(
    cli, api: FakePublicApi, method, path, status, body, code, words
) -> None:
    api.fail(method, path, status, times=50, body=body)
    result = cli("destination", "configure", "--org-id", "o1", "--source", "my-site", "--apply")
    assert result.exit_code == code, result.stderr
    assert words in result.stderr
    assert result.stderr.count("\n") <= 4  # one error line, plus any wait notices
    assert "Traceback" not in result.stderr


def test_429_is_waited_out_then_the_apply_completes(cli, api: FakePublicApi) -> None:
    api.fail("POST", r"/destinations/[^/]+/subscriptions", 429, body={"data": {"msBeforeNext": 5}})
    result = cli("destination", "configure", "--org-id", "o1", "--source", "my-site", "--apply")
    assert result.exit_code == 0, result.stderr
    assert "rate limited" in result.stderr and "retrying in 0.0 s" in result.stderr
    assert len(api.subscriptions) == 2


def test_an_unknown_source_is_named(cli, api: FakePublicApi) -> None:
    result = cli("destination", "configure", "--org-id", "o1", "--source", "nope", "--apply")
    assert result.exit_code == 5
    assert "no source with id, slug or name 'nope'" in result.stderr
    assert "my-site" in result.stderr


def test_the_source_is_found_by_id_or_name(cli, api: FakePublicApi) -> None:
    result = cli("destination", "configure", "--org-id", "o1", "--source", "My Site", "--apply")
    assert result.exit_code == 0, result.stderr
    assert len(api.on_source(source_id(api))) == 1
    again = cli("destination", "configure", "--source", source_id(api), "--apply", "--json")
    assert json.loads(again.stdout)["apply"]["requests"] == []


def test_an_unreachable_api_host(cli, api: FakePublicApi) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli(
        "destination",
        "configure",
        "--org-id",
        "o1",
        "--source",
        "my-site",
        "--apply",
        "--api-host",
        f"http://127.0.0.1:{port}",
    )
    assert result.exit_code == 6
    assert "could not be reached" in result.stderr


def test_an_api_host_that_never_answers(cli, api: FakePublicApi) -> None:
    # Takes the connection, never answers: each try times out, then the command exits 6.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        result = cli(
            "destination",
            "configure",
            "--org-id",
            "o1",
            "--source",
            "my-site",
            "--apply",
            "--api-host",
            f"http://127.0.0.1:{port}",
            "--timeout",
            "0.5",
        )
    assert result.exit_code == 6, result.stderr
    assert "did not answer in time" in result.stderr


def test_apply_without_a_token_says_where_to_give_one(
    cli, api: FakePublicApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CMDAI_PUBLIC_API_TOKEN")
    result = cli("destination", "configure", "--org-id", "o1", "--source", "my-site", "--apply")
    assert result.exit_code == 3
    assert "--token" in result.stderr and "CMDAI_PUBLIC_API_TOKEN" in result.stderr
    assert api.requests == []


# ---------------------------------------------------------------- the webhook destination


def test_webhook_with_secret_from_stdin_then_idempotent(
    cli, api: FakePublicApi, config_path: Path
) -> None:
    args = ("destination", "configure", "--webhook-url", HOOK, "--source", "my-site")
    result = cli(*args, "--shared-secret", "-", "--apply", input=SHARED_SECRET + "\n")
    assert result.exit_code == 0, result.stderr
    assert stored(config_path)["webhook_shared_secret"] == SHARED_SECRET
    (dest,) = api.on_source(source_id(api), WEBHOOKS)
    assert dest["settings"] == {"sharedSecret": SHARED_SECRET}
    (send,) = api.subs_of(dest["id"])
    assert send["actionId"] == SEND and send["trigger"] == 'type = "identify"'
    assert send["settings"] == {"url": HOOK, "method": "POST", "data": {"@path": "$."}}
    assert 'sharedSecret = "whse****"' in result.stdout

    before = len(api.writes())
    again = cli(*args, "--shared-secret", SHARED_SECRET, "--apply")
    assert again.exit_code == 0, again.stderr
    assert "No changes" in again.stdout
    assert len(api.writes()) == before


def test_a_new_shared_secret_is_sent_though_segment_masks_the_old(
    cli, api: FakePublicApi, secrets
) -> None:
    new_secret = secrets.add("whsec_ROTATED_9876543210")
    args = ("destination", "configure", "--webhook-url", HOOK, "--source", "my-site", "--apply")
    cli(*args, "--shared-secret", SHARED_SECRET)
    before = len(api.writes())
    result = cli(*args, "--shared-secret", new_secret, "--dry-run", "--json")
    (write,) = json.loads(result.stdout)["apply"]["requests"]
    assert write["body"] == {"settings": {"sharedSecret": "whse****"}}
    assert len(api.writes()) == before
    result = cli(*args, "--shared-secret", new_secret)
    assert result.exit_code == 0, result.stderr
    (dest,) = api.on_source(source_id(api), WEBHOOKS)
    assert dest["settings"]["sharedSecret"] == new_secret


def test_webhook_with_a_custom_mapping_file(
    cli, api: FakePublicApi, tmp_path: Path, config_path: Path
) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        "[mapping]\n"
        'userId = "$.userId"\n'
        '"user_property.plan" = "$.properties.plan"\n'
        'user_property_event = "extension installed"\n'
        'email = "$.traits.email"\n'
    )
    result = cli(
        "destination",
        "configure",
        "--webhook-url",
        HOOK,
        "--mapping",
        str(mapping),
        "--trigger",
        'type = "track"',
        "--source",
        "my-site",
        "--apply",
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: mapping key 'email' has no effect on Command AI" in result.stderr
    assert stored(config_path)["mapping"] == {
        "userId": "$.userId",
        "user_property.plan": "$.properties.plan",
        "user_property_event": "extension installed",
        "email": "$.traits.email",
    }
    (dest,) = api.on_source(source_id(api), WEBHOOKS)
    (send,) = api.subs_of(dest["id"])
    assert send["trigger"] == 'type = "track"'
    assert send["settings"]["data"]["user_property.plan"] == {"@path": "$.properties.plan"}
    assert send["settings"]["data"]["user_property_event"] == "extension installed"

    # Back to the recommended set-up: only the subscription's data and trigger change.
    before = len(api.writes())
    cli(
        "destination",
        "configure",
        "--mapping",
        "recommended",
        "--trigger",
        'type = "identify"',
        "--apply",
    )
    (write,) = api.writes()[before:]
    assert write.body == {
        "input": {
            "trigger": 'type = "identify"',
            "settings": {"url": HOOK, "method": "POST", "data": {"@path": "$."}},
        }
    }


def test_a_mapping_without_user_id_is_refused(cli, tmp_path: Path, config_path: Path) -> None:
    mapping = tmp_path / "bad.toml"
    mapping.write_text('[mapping]\ntraits = "$.traits"\n')
    result = cli("destination", "configure", "--webhook-url", HOOK, "--mapping", str(mapping))
    assert result.exit_code == 4
    assert "bad.toml" in result.stderr and "userId" in result.stderr
    assert not config_path.exists()


def test_the_webhook_url_must_be_https_except_on_loopback(cli, config_path: Path) -> None:
    result = cli("destination", "configure", "--webhook-url", "http://hooks.example.com/x")
    assert result.exit_code == 2 and "https" in result.stderr
    ok = cli("destination", "configure", "--webhook-url", "http://127.0.0.1:8080/hook")
    assert ok.exit_code == 0, ok.stderr


def test_another_webhook_destination_on_the_source_is_left_alone(cli, api: FakePublicApi) -> None:
    api.destinations["dother"] = {
        "id": "dother",
        "sourceId": source_id(api),
        "metadataId": WEBHOOKS,
        "name": "Slack relay",
        "enabled": True,
        "settings": {},
    }
    api.subscriptions["sother"] = {
        "id": "sother",
        "destinationId": "dother",
        "name": "Send",
        "actionId": SEND,
        "trigger": 'type = "track"',
        "enabled": True,
        "settings": {"url": "https://relay.example.com", "method": "POST"},
    }
    result = cli(
        "destination", "configure", "--webhook-url", HOOK, "--source", "my-site", "--apply"
    )
    assert result.exit_code == 0, result.stderr
    assert len(api.on_source(source_id(api), WEBHOOKS)) == 2
    assert api.subscriptions["sother"]["settings"]["url"] == "https://relay.example.com"


# ---------------------------------------------------------------- show


def test_show_masks_secrets(cli) -> None:
    cli("destination", "configure", "--webhook-url", HOOK, "--shared-secret", SHARED_SECRET)
    result = cli("destination", "show", "--json")
    data = json.loads(result.stdout)
    assert data["settings"]["webhook_shared_secret"] == "whse****"
    assert data["settings"]["webhook_url"] == HOOK
    assert data["remote"] is None
    assert data["destinations"][0]["destination"]["settings"] == {"sharedSecret": "whse****"}
    human = cli("destination", "show")
    assert "webhook_shared_secret: whse****" in human.stdout


def test_show_remote_lists_the_differences(cli, api: FakePublicApi) -> None:
    cli("destination", "configure", "--org-id", "o1", "--source", "my-site", "--apply")
    synced = json.loads(cli("destination", "show", "--remote", "--json").stdout)
    assert synced["in_sync"] is True and synced["differences"] == []
    remote = synced["remote"]["destinations"]["commandai"]
    assert remote["destination"]["settings"] == {"orgId": "o1", "deploy": False}
    assert len(remote["subscriptions"]) == 2

    (dest,) = api.on_source(source_id(api), COMMANDAI)
    dest["settings"]["deploy"] = True
    result = cli("destination", "show", "--remote")
    assert result.exit_code == 0, result.stderr
    assert "update Command AI destination" in result.stdout
    assert "settings.deploy: true -> false" in result.stdout
    assert api.writes()[-1].method == "POST"  # show wrote nothing


def test_show_remote_needs_a_set_up(cli, api: FakePublicApi) -> None:
    result = cli("destination", "show", "--remote")
    assert result.exit_code == 3
    assert "no destination" in result.stderr
