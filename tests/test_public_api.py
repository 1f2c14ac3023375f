from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from cmdai_cli.errors import ExitCode, RemoteRefused, RemoteUnreachable
from cmdai_cli.public_api import ALPHA_MEDIA_TYPE, STABLE_MEDIA_TYPE, PublicApi
from cmdai_cli.retry import RetryPolicy
from tests.conftest import TOKEN
from tests.fake_public_api import FakePublicApi, running

POLICY = RetryPolicy(max_retries=3, base_delay=0.05, max_delay=1.0, max_total_wait=20.0)


@pytest.fixture
def api() -> Iterator[FakePublicApi]:
    with running(TOKEN) as fake:
        yield fake


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client(api: FakePublicApi, sleeps: Sleeps, **kwargs: object) -> PublicApi:
    options: dict[str, object] = {"policy": POLICY, "sleep": sleeps, "page_size": 2}
    options.update(kwargs)
    return PublicApi(api.url, TOKEN, **options)  # type: ignore[arg-type]


def test_pages_are_followed_to_the_end(api: FakePublicApi, sleeps: Sleeps) -> None:
    for n in range(5):
        api.add_source(f"site-{n}")
    with client(api, sleeps) as c:
        slugs = [s["slug"] for s in c.list_sources()]
    assert slugs == [f"site-{n}" for n in range(5)]
    gets = [r for r in api.requests if r.path == "/sources"]
    assert [r.query.get("pagination.cursor") for r in gets] == [None, ["2"], ["4"]]
    assert all(r.query["pagination.count"] == ["2"] for r in gets)


def test_headers_auth_and_media_types(api: FakePublicApi, sleeps: Sleeps) -> None:
    source = api.add_source("site")
    with client(api, sleeps) as c:
        created = c.call(
            "POST",
            "/destinations",
            body={
                "sourceId": source["id"],
                "metadataId": "638f843c4520d424f63c9e51",
                "settings": {"orgId": "org1"},
            },
        )
        dest_id = created["destination"]["id"]
        assert c.list_subscriptions(dest_id) == []
    post, listing = api.requests
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.headers["accept"] == STABLE_MEDIA_TYPE
    assert post.headers["content-type"] == STABLE_MEDIA_TYPE
    assert listing.headers["accept"] == ALPHA_MEDIA_TYPE


def test_the_fake_refuses_what_segment_refuses(api: FakePublicApi) -> None:
    # Guards the guard: without these refusals the end-to-end tests could not fail.
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": ALPHA_MEDIA_TYPE}
    source = api.add_source("site")
    api.destinations["d1"] = {
        "id": "d1",
        "sourceId": source["id"],
        "metadataId": "638f843c4520d424f63c9e51",
        "name": "x",
        "enabled": True,
        "settings": {},
    }
    api.subscriptions["s1"] = {"id": "s1", "destinationId": "d1", "settings": {}}
    url = api.url + "/destinations/d1/subscriptions"
    assert httpx.get(url, headers={**headers, "Accept": STABLE_MEDIA_TYPE}).status_code == 406
    no_wrapper = httpx.patch(
        url + "/s1", json={"trigger": "x"}, headers={**headers, "Content-Type": ALPHA_MEDIA_TYPE}
    )
    assert no_wrapper.status_code == 422
    assert httpx.get(api.url + "/sources", headers=headers | {"Accept": "*/*"}).status_code == 422


def test_a_wrong_token_is_refused(api: FakePublicApi, sleeps: Sleeps) -> None:
    with (
        PublicApi(api.url, "sgp_WRONG_TOKEN_000000", sleep=sleeps) as c,
        pytest.raises(RemoteRefused) as info,
    ):
        c.list_sources()
    assert info.value.status == 401
    assert "token" in (info.value.hint or "")
    assert sleeps == []


def test_429_waits_as_the_body_says(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 429, body={"data": {"msBeforeNext": 1500}})
    with client(api, sleeps) as c:
        assert c.list_sources() == []
    assert sleeps == [1.5]


def test_429_waits_as_retry_after_says(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 429, headers={"Retry-After": "7"})
    with client(api, sleeps) as c:
        c.list_sources()
    assert sleeps == [7.0]


def test_429_waits_until_the_rate_limit_reset(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 429, headers={"X-RateLimit-Reset": "1700000003000"})
    with client(api, sleeps, clock=lambda: 1_700_000_000.0) as c:
        c.list_sources()
    assert sleeps == [3.0]


def test_429_is_waited_out_a_bounded_number_of_times(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 429, times=100, body={"data": {"msBeforeNext": 10}})
    with client(api, sleeps) as c, pytest.raises(RemoteRefused) as info:
        c.list_sources()
    assert info.value.status == 429
    assert "gave up after 4 attempts" in info.value.message
    assert len(sleeps) == 3
    assert len(api.requests) == 4


def test_429_asking_for_more_than_the_limit_fails_at_once(
    api: FakePublicApi, sleeps: Sleeps
) -> None:
    api.fail("GET", "/sources", 429, headers={"Retry-After": "3600"})
    with client(api, sleeps) as c, pytest.raises(RemoteRefused) as info:
        c.list_sources()
    assert "3600.0 s" in info.value.message
    assert sleeps == []


def test_5xx_backs_off_then_succeeds(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 503, times=2)
    with client(api, sleeps) as c:
        c.list_sources()
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.05 and 0 <= sleeps[1] <= 0.1


def test_5xx_that_persists_fails_as_unreachable(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 503, times=100)
    with client(api, sleeps) as c, pytest.raises(RemoteUnreachable) as info:
        c.list_sources()
    assert info.value.exit_code == ExitCode.UNREACHABLE
    assert len(api.requests) == 4
    assert "gave up after 4 attempts in " in info.value.message


def test_a_500_is_not_retried(api: FakePublicApi, sleeps: Sleeps) -> None:
    # A failure, not a busy service: the same request meets it again.
    api.fail("GET", "/sources", 500, times=100)
    with client(api, sleeps) as c, pytest.raises(RemoteUnreachable):
        c.list_sources()
    assert len(api.requests) == 1
    assert sleeps == []


def test_a_post_is_not_repeated_after_a_500(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("POST", "/destinations", 500)
    with client(api, sleeps) as c, pytest.raises(RemoteUnreachable):
        c.call("POST", "/destinations", body={})
    assert len(api.requests) == 1


def test_a_dropped_connection_is_retried_for_a_read_only(
    api: FakePublicApi, sleeps: Sleeps
) -> None:
    api.fail("GET", "/sources", 0)
    api.fail("POST", "/destinations", 0)
    with client(api, sleeps) as c:
        c.list_sources()
        with pytest.raises(RemoteUnreachable) as info:
            c.call("POST", "/destinations", body={})
    assert "Segment Public API" in info.value.message
    assert [r.method for r in api.requests] == ["GET", "GET", "POST"]


def test_an_unreachable_host_is_not_retried(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    with (
        PublicApi(host, TOKEN, policy=POLICY, sleep=sleeps) as c,
        pytest.raises(RemoteUnreachable) as info,
    ):
        c.list_sources()
    assert "could not be reached" in info.value.message
    # A refused connection is not a busy server: no retry, and the message says so.
    assert sleeps == []
    assert "gave up after 1 attempt in " in info.value.message


def test_422_names_the_fields(api: FakePublicApi, sleeps: Sleeps) -> None:
    source = api.add_source("site")
    body = {"sourceId": source["id"], "metadataId": "nope", "settings": 3}
    with client(api, sleeps) as c, pytest.raises(RemoteRefused) as info:
        c.call("POST", "/destinations", body=body)
    assert info.value.status == 422
    assert "metadataId: unknown destination metadata" in info.value.message
    assert "settings: must be an object" in info.value.message


def test_a_success_without_data_is_refused(api: FakePublicApi, sleeps: Sleeps) -> None:
    api.fail("GET", "/sources", 200, body={"sources": []})
    with client(api, sleeps) as c, pytest.raises(RemoteRefused) as info:
        c.list_sources()
    assert "without a 'data' object" in info.value.message


def test_waits_are_reported(api: FakePublicApi, sleeps: Sleeps) -> None:
    told: list[str] = []
    api.fail("GET", "/sources", 429, body={"data": {"msBeforeNext": 200}})
    with client(api, sleeps, on_wait=told.append) as c:
        c.list_sources()
    assert told == ["Segment Public API rate limited (GET /sources); retrying in 0.2 s"]


def test_a_wait_past_the_deadline_says_so_with_what_was_tried(
    api: FakePublicApi, sleeps: Sleeps
) -> None:
    # Segment asks for 5 s; 1 s of deadline is left: the message says that it was the
    # next wait, not a deadline already passed, and how many attempts were made.
    api.fail("GET", "/sources", 429, times=100, body={"data": {"msBeforeNext": 5000}})
    with client(api, sleeps, deadline=1.0) as c, pytest.raises(RemoteRefused) as info:
        c.list_sources()
    assert sleeps == []
    message = info.value.message
    assert "gave up after 1 attempt in " in message
    assert "the next wait (5.0 s) would pass the overall deadline of 1 s" in message
