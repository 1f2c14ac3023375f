"""The test event's judgement: one exit rule and one set of hints for every command."""

from __future__ import annotations

import pytest

from cmdai_cli import probe
from cmdai_cli.commands._options import REGIONS
from cmdai_cli.errors import ExitCode, UsageError
from cmdai_cli.segment import sender
from cmdai_cli.segment.messages import REGION_HOSTS


def summary(status: str, code: int | None, *, local: bool = False) -> probe.Sent:
    return probe.Sent(
        message_id="m1",
        event="x",
        type="track",
        host="http://127.0.0.1:9",
        status=status,
        http_status=code,
        detail="because",
        local=local,
    )


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        ("refused", 400, ExitCode.REFUSED),
        ("refused", 401, ExitCode.REFUSED),
        ("refused", 429, ExitCode.REFUSED),
        ("refused", 500, ExitCode.UNREACHABLE),
        ("refused", 503, ExitCode.UNREACHABLE),
        ("unreachable", None, ExitCode.UNREACHABLE),
    ],
)
def test_one_exit_rule(status: str, code: int | None, exit_code: ExitCode) -> None:
    problem = probe.failure(summary(status, code))
    assert problem is not None
    assert problem.exit_code == exit_code


def test_an_accepted_event_is_no_failure_unless_it_never_arrived_locally() -> None:
    assert probe.failure(summary("accepted", 200)) is None
    lost = probe.failure(summary("accepted", 200, local=True))
    assert lost is not None and lost.exit_code == ExitCode.FAILURE


def test_hints_for_refusals_and_failures_are_the_segment_layers() -> None:
    refused = probe.failure(summary("refused", 401))
    assert refused is not None and refused.hint == sender.SEGMENT_HINTS[401]
    failed = probe.failure(summary("refused", 503))
    assert failed is not None and failed.hint == sender.SERVER_FAILED_HINT
    detail, hint = sender.not_taken("h", 418, "tea", "the test event")
    assert detail == "h refused the test event: HTTP 418: tea"
    assert hint == sender.SEGMENT_HOST_HINT


def test_build_and_properties() -> None:
    message, name = probe.build()
    assert message["type"] == "track" and name == message["event"]
    assert probe.parse_properties(["a=3", "b=x", "c={}"]) == {"a": 3, "b": "x", "c": {}}
    with pytest.raises(UsageError):
        probe.parse_properties(["novalue"])
    with pytest.raises(UsageError):
        probe.build(None, "u", "a")


def test_the_region_choice_is_the_profiles() -> None:
    assert tuple(REGION_HOSTS) == REGIONS
