"""Write keys checked on Segment's CDN: the client, connect, doctor and send-test.

The stand-in CDN is pytest-httpserver serving settings documents shaped as Segment's
CDN serves them (analytics-next's `CDNSettings`), or `cmdai listen`'s receiver.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.segment.cdn import check_write_key, parse_settings, region_of

from .conftest import CLOSED_CDN, WRITE_KEY

SETTINGS_PATH = f"/v1/projects/{WRITE_KEY}/settings"


def document(api_host: str = "events.eu1.segmentapis.com/v1", org_id: str = "org-42") -> Any:
    return {
        "integrations": {"Segment.io": {"apiKey": WRITE_KEY, "apiHost": api_host}},
        "remotePlugins": [
            {
                "name": "Command AI",
                "creationName": "CommandBar",
                "libraryName": "commandbarDestination",
                "url": "https://cdn.segment.com/next-integrations/actions/commandbar/x.js",
                "settings": {"orgId": org_id, "deploy": False, "subscriptions": []},
            },
            {"name": "Mixpanel (Actions)", "creationName": "Mixpanel", "settings": {}},
        ],
        "plan": {},
    }


@pytest.fixture
def cdn(httpserver: HTTPServer) -> str:
    return httpserver.url_for("").rstrip("/")


def serve(httpserver: HTTPServer, body: Any, status: int = 200) -> None:
    httpserver.expect_request(SETTINGS_PATH).respond_with_json(body, status=status)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ the client


def test_a_known_key_is_verified_with_region_and_destinations(
    httpserver: HTTPServer, cdn: str
) -> None:
    serve(httpserver, document())
    check = check_write_key(WRITE_KEY, cdn)
    assert check.status == "verified" and check.settings is not None
    assert check.settings.region == "eu"
    assert [d.name for d in check.settings.destinations] == ["Command AI", "Mixpanel (Actions)"]
    found = check.settings.commandai()
    assert found is not None and found.settings["orgId"] == "org-42"


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [(404, {"message": "not found"}, "unknown"), (500, {}, "unverified"), (200, [1], "unverified")],
)
def test_other_answers(
    httpserver: HTTPServer, cdn: str, status: int, body: Any, verdict: str
) -> None:
    serve(httpserver, body, status)
    assert check_write_key(WRITE_KEY, cdn).status == verdict


def test_an_unreachable_cdn_is_unverified() -> None:
    check = check_write_key(WRITE_KEY, f"http://127.0.0.1:{closed_port()}")
    assert check.status == "unverified" and "could not be reached" in check.detail
    assert WRITE_KEY not in check.detail


def test_regions_and_the_documents_shape() -> None:
    assert region_of("api.segment.io/v1") == "us"
    assert region_of("https://events.eu1.segmentapis.com/v1") == "eu"
    assert region_of("127.0.0.1:8765/v1") is None
    assert region_of(None) is None
    with pytest.raises(ValueError):
        parse_settings({"remotePlugins": []})


def test_listen_is_a_cdn_for_its_own_key() -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        check = check_write_key(WRITE_KEY, rx.url)
        assert check.status == "verified" and check.settings is not None
        assert check.settings.api_host == f"127.0.0.1:{rx.port}/v1"
        assert check_write_key("another-key-123", rx.url).status == "unknown"


# ------------------------------------------------------------------ connect


def test_connect_stores_a_verified_key_and_learns_the_region(
    cli: Any, httpserver: HTTPServer, cdn: str, config_path: Path
) -> None:
    serve(httpserver, document())
    result = cli("connect", "--write-key", WRITE_KEY, "--cdn-host", cdn, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["region"] == "eu"
    assert data["segment_host"] == "https://events.eu1.segmentapis.com"
    assert data["key_check"]["status"] == "verified"
    assert [d["name"] for d in data["key_check"]["destinations"]] == [
        "Command AI",
        "Mixpanel (Actions)",
    ]
    stored = config_path.read_text()
    assert WRITE_KEY in stored and 'region = "eu"' in stored and cdn in stored


def test_connect_human_output_names_the_destinations(
    cli: Any, httpserver: HTTPServer, cdn: str
) -> None:
    serve(httpserver, document())
    result = cli("connect", "--write-key", WRITE_KEY, "--cdn-host", cdn)
    assert result.exit_code == 0, result.stderr
    assert "region eu (from the source's settings)" in result.stdout
    assert "destinations enabled: Command AI, Mixpanel (Actions)" in result.stdout


def test_a_given_region_is_kept(cli: Any, httpserver: HTTPServer, cdn: str) -> None:
    serve(httpserver, document())
    result = cli("connect", "--write-key", WRITE_KEY, "--cdn-host", cdn, "--region", "us")
    assert result.exit_code == 0 and "region us," in result.stdout


def test_connect_refuses_an_unknown_key_and_stores_nothing(
    cli: Any, httpserver: HTTPServer, cdn: str, config_path: Path
) -> None:
    serve(httpserver, {"message": "not found"}, 404)
    result = cli("connect", "--write-key", WRITE_KEY, "--cdn-host", cdn, "--json")
    assert result.exit_code == 5
    assert "no Segment source has this write key" in result.stderr
    assert "--no-verify" in result.stderr
    assert result.stdout == ""
    assert not config_path.exists() or WRITE_KEY not in config_path.read_text()


def test_connect_stores_with_a_warning_when_the_cdn_is_unreachable(
    cli: Any, config_path: Path
) -> None:
    result = cli("connect", "--write-key", WRITE_KEY, "--json")
    assert result.exit_code == 0
    assert "warning: write key not verified" in result.stderr
    assert CLOSED_CDN in result.stderr and "stored it anyway" in result.stderr
    assert json.loads(result.stdout)["key_check"]["status"] == "unverified"
    assert WRITE_KEY in config_path.read_text()


def test_no_verify_asks_nothing(cli: Any, httpserver: HTTPServer, cdn: str) -> None:
    result = cli("connect", "--write-key", WRITE_KEY, "--cdn-host", cdn, "--no-verify", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["key_check"] == {"status": "skipped"}
    assert httpserver.log == []


def test_the_cdn_host_comes_from_the_environment(
    cli: Any, httpserver: HTTPServer, cdn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(httpserver, {"message": "not found"}, 404)
    monkeypatch.setenv("CMDAI_CDN_HOST", cdn)
    assert cli("connect", "--write-key", WRITE_KEY).exit_code == 5


# ------------------------------------------------------------------ doctor


@pytest.fixture
def tracking(monkeypatch: pytest.MonkeyPatch) -> Any:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
        monkeypatch.setenv("CMDAI_SEGMENT_HOST", rx.url)
        yield rx


def doctor_checks(cli: Any, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = cli("doctor", "--json", *args)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return result.exit_code, checks


def test_doctor_passes_the_destination_with_the_profiles_org_id(
    cli: Any, httpserver: HTTPServer, cdn: str, tracking: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(httpserver, document())
    monkeypatch.setenv("CMDAI_ORG_ID", "org-42")
    monkeypatch.setenv("CMDAI_REGION", "eu")
    code, checks = doctor_checks(cli, "--cdn-host", cdn)
    assert code == 0
    assert checks["source"]["status"] == "pass"
    assert checks["command ai destination"]["status"] == "pass"
    assert "org-42" in checks["command ai destination"]["detail"]
    # The Tracking API in use is the stand-in, in the source's region.
    assert checks["region"]["status"] == "pass"


def test_doctor_fails_another_org_id_and_another_region(
    cli: Any, httpserver: HTTPServer, cdn: str, tracking: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(httpserver, document())
    monkeypatch.setenv("CMDAI_ORG_ID", "org-7")
    code, checks = doctor_checks(cli, "--cdn-host", cdn, "--region", "us")
    assert code == 1
    destination, region = checks["command ai destination"], checks["region"]
    assert destination["status"] == "fail" and "org-7" in destination["detail"]
    assert region["status"] == "fail" and "the source is in eu" in region["detail"]
    assert "--region eu" in region["hint"]


def test_doctor_fails_a_key_no_source_has(
    cli: Any, httpserver: HTTPServer, cdn: str, tracking: Receiver
) -> None:
    serve(httpserver, {"message": "not found"}, 404)
    code, checks = doctor_checks(cli, "--cdn-host", cdn)
    assert code == 1
    # Segment's Tracking API takes the key all the same: only the CDN tells.
    assert checks["segment host"]["status"] == "pass"
    assert checks["source"]["status"] == "fail"
    assert "copy the write key again" in checks["source"]["hint"]
    assert checks["region"]["status"] == "skip"


def test_doctor_without_the_destination_when_deploying_through_segment(
    cli: Any, httpserver: HTTPServer, cdn: str, tracking: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = document()
    bare["remotePlugins"] = []
    serve(httpserver, bare)
    code, checks = doctor_checks(cli, "--cdn-host", cdn)
    assert checks["command ai destination"]["status"] == "skip"
    monkeypatch.setenv("CMDAI_DEPLOY_VIA_SEGMENT", "true")
    code, checks = doctor_checks(cli, "--cdn-host", cdn)
    assert code == 1 and checks["command ai destination"]["status"] == "fail"


# ------------------------------------------------------------------ send-test


def test_send_test_reports_the_key_verified_or_not(
    cli: Any, tracking: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The receiver is both the Tracking API and the CDN, and knows WRITE_KEY.
    result = cli("send-test", "--cdn-host", tracking.url, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["keyCheck"]["status"] == "verified"
    monkeypatch.setenv("CMDAI_CDN_HOST", tracking.url)
    assert "write key  verified" in cli("send-test").stdout
    monkeypatch.setenv("CMDAI_WRITE_KEY", "another-key-0123456789")
    result = cli("send-test")
    # Segment takes the event (exit 0) and drops it later: the report says why.
    assert result.exit_code == 0
    assert "write key  NOT a Segment source's key" in result.stdout
    assert "Debugger;" not in result.stdout and "will not show" in result.stdout


def test_send_test_checks_the_cdn_host_flag(cli: Any, tracking: Receiver) -> None:
    result = cli("send-test", "--cdn-host", "ftp://cdn.example")
    assert result.exit_code == 2 and "--cdn-host" in result.stderr
    assert cli("send-test", "--local", "--cdn-host", tracking.url).exit_code == 2
