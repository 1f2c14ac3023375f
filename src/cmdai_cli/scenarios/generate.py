"""Users, sessions and events from compiled scenarios, deterministic by seed.

Each user gets a stable id, an organization and traits, then sessions: one per named
flow (run in the order named), or for a mix a drawn number of sessions each of a flow
drawn by weight. Sessions start at times drawn over the window (with no window, a
user's sessions follow one another). Events come out in timestamp order: sessions are
expanded as their start comes up, and their events wait in a heap, which only ever
holds the sessions running at the same time.

One random stream, seeded once, is drawn from in a fixed order, and every messageId is
the run's key plus the session's and the event's numbers, so the same seed and options
give the same events, ids included (Segment deduplicates a second run by messageId).
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cmdai_cli.scenarios.format import Scenario, Step, UserSpec, default_user
from cmdai_cli.scenarios.values import Context, User, build


@dataclass(frozen=True)
class Plan:
    """What to generate: the scenarios named, for how many users, from when, over how long."""

    scenarios: tuple[Scenario, ...]
    users: int
    seed: int
    start_ms: int
    duration: float
    key: str  # the run's key: the messageIds' prefix


@dataclass(slots=True)
class Session:
    start: int  # milliseconds since the epoch
    number: int
    user: User
    flow: Scenario


def _uuid(bits: int) -> str:
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}"


def user_spec(scenarios: Sequence[Scenario]) -> UserSpec:
    """Who the users are: the first named scenario's [user] that has one, else the default."""
    return next((s.user for s in scenarios if s.user is not None), None) or default_user()


def make_user(spec: UserSpec, rng: random.Random, forced: int | None = None) -> User:
    user = User(f"user-{rng.getrandbits(40):010x}", None, {})
    ctx = Context(user, "", rng.random, forced)
    user.organization = build(spec.organization, ctx)
    user.traits = {key: build(node, ctx) for key, node in spec.traits.items()}
    return user


def sessions(plan: Plan, rng: random.Random) -> list[Session]:
    """Every session of every user, sorted by start (then by number)."""
    spec = user_spec(plan.scenarios)
    window = int(plan.duration * 1000)
    out: list[Session] = []
    number = 0
    for _ in range(plan.users):
        user = make_user(spec, rng)
        flows: list[Scenario] = []
        for scenario in plan.scenarios:
            flows.extend(_flows_of(scenario, rng))
        if window:
            starts = sorted(plan.start_ms + int(rng.random() * window) for _ in flows)
        else:
            starts, at = [], plan.start_ms
            for flow in flows:
                starts.append(at)
                at += int(flow.span() * 1000) + 1000
        for start, flow in zip(starts, flows, strict=True):
            out.append(Session(start, number, user, flow))
            number += 1
    out.sort(key=lambda s: (s.start, s.number))
    return out


def _flows_of(scenario: Scenario, rng: random.Random) -> list[Scenario]:
    if not scenario.is_mix:
        return [scenario]
    low, high = scenario.sessions
    count = low + min(int(rng.random() * (high - low + 1)), high - low)
    flows = [flow for flow, _ in scenario.mix]
    return rng.choices(flows, cum_weights=scenario.cumulative, k=count)


def expand(
    session: Session,
    key: str,
    rng: random.Random,
    forced: int | None = None,
) -> list[tuple[int, Step, dict[str, Any]]]:
    """The session's events in order: (time in ms, its step, the message, its timestamp
    left None for the caller to write)."""
    draw = rng.random
    ctx = Context(session.user, _uuid(rng.getrandbits(128)), draw, forced)
    outcomes: dict[str, str] = {}
    at = session.start
    prefix = f"{key}-{session.number:x}-"
    n = 0
    user_id = session.user.id
    out: list[tuple[int, Step, dict[str, Any]]] = []
    append = out.append
    for step in session.flow.steps:
        when, chance, low, high, d_low, d_high, pick, variants, step_id = step.plan
        if when is not None and outcomes.get(when[0]) not in when[1]:
            continue
        if chance < 1 and forced is None and draw() >= chance:
            continue
        if forced is not None:
            times = max(low, 1)
        else:
            times = low if low == high else low + min(int(draw() * (high - low + 1)), high - low)
        for _ in range(times):
            if d_low == d_high:
                at += int(d_low * 1000)
            else:
                at += int((d_low + draw() * (d_high - d_low)) * 1000)
            variant = variants[pick(ctx)] if pick is not None else variants[0]
            const, payload = variant.payload
            if variant.kind == "track":
                message = {
                    "type": "track",
                    "event": variant.name,
                    "userId": user_id,
                    "messageId": f"{prefix}{n}",
                    "timestamp": None,
                    "context": {},
                    "properties": payload if const else payload(ctx),
                }
            else:
                message = {
                    "type": "identify",
                    "userId": user_id,
                    "messageId": f"{prefix}{n}",
                    "timestamp": None,
                    "context": {},
                    "traits": payload if const else payload(ctx),
                }
            n += 1
            if step_id is not None:
                ctx.steps[step_id] = message
                outcomes[step_id] = variant.name
            append((at, step, message))
    return out


class Stamps:
    """ISO-8601 timestamps from milliseconds, the minute's text kept from one to the next
    (events come in time order, so most share their minute with the one before)."""

    def __init__(self) -> None:
        self.minute = -1
        self.text = ""

    def __call__(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self.minute:
            self.minute = minute
            self.text = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return f"{self.text}{rest // 1000:02d}.{rest % 1000:03d}Z"


def events(plan: Plan, counts: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Every event of the plan, in timestamp order (ties in the order they were made);
    `counts` gets the number of each event name (identify: "identify") as they go out."""
    rng = random.Random(plan.seed)
    key = plan.key
    stamp = Stamps()
    counted: dict[str, int] = {} if counts is None else counts
    heap: list[tuple[int, int, dict[str, Any]]] = []
    push, pop = heapq.heappush, heapq.heappop
    order = 0
    for session in sessions(plan, rng):
        start = session.start
        while heap and heap[0][0] <= start:
            at, _, message = pop(heap)
            message["timestamp"] = stamp(at)
            name = message.get("event", "identify")
            counted[name] = counted.get(name, 0) + 1
            yield message
        for at, _, message in expand(session, key, rng):
            push(heap, (at, order, message))
            order += 1
    while heap:
        at, _, message = pop(heap)
        message["timestamp"] = stamp(at)
        name = message.get("event", "identify")
        counted[name] = counted.get(name, 0) + 1
        yield message


def samples(flow: Scenario, spec: UserSpec, rounds: int) -> Iterator[tuple[Step, dict[str, Any]]]:
    """For checking: a flow's events with every choice (the users' traits' too) at each
    option in turn, every optional step taken, ranges at their ends."""
    rng = random.Random(0)
    for forced in range(rounds):
        session = Session(0, 0, make_user(spec, rng, forced), flow)
        for at, step, message in expand(session, "check", rng, forced):
            message["timestamp"] = Stamps()(at)
            yield step, message


def rounds_needed(scenarios: Sequence[Scenario]) -> int:
    """How many forced rounds show every option: the widest choice (events, values and
    the users' traits), and 2 for ranges' two ends."""
    widest = 2
    for scenario in scenarios:
        widest = max(widest, scenario.widest)
        for flow in scenario.flows():
            widest = max(widest, flow.widest)
    return widest
