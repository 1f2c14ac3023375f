"""Hypothesis against the receiver's request handling: any body, any headers, any path.

Whatever arrives, the answer is one of the statuses Segment gives (or the receiver's own
404/405), never an exception, and what is accepted is stored whole.
"""

from __future__ import annotations

import gzip

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.exchange import Headers, Request
from cmdai_cli.receiver.protocol import Rejected, decode_body, parse_encoded

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=400),
    JSONISH.map(orjson.dumps),
    st.dictionaries(
        st.sampled_from(["batch", "type", "userId", "writeKey", "context", "sentAt"]),
        JSONISH,
    ).map(orjson.dumps),
)
PATHS = st.sampled_from(
    ["/v1/batch", "/v1/track", "/v1/identify", "/v1/nope", "/", "/health", "/v1/batch/?a=1", ""]
)


@settings(max_examples=300, deadline=None)
@given(body=BODIES, path=PATHS, gz=st.booleans())
def test_protocol_parsing_refuses_or_accepts_never_breaks(body: bytes, path: str, gz: bool) -> None:
    raw = gzip.compress(body) if gz else body
    try:
        decoded = decode_body(raw, "gzip" if gz else None)
        parsed = parse_encoded(
            path if path in ("/v1/batch", "/v1/track") else "/v1/batch", decoded, None, None, None
        )
    except Rejected as rejected:
        assert rejected.status in (400, 401)
        return
    for message, raw, _ in parsed:
        assert isinstance(message, dict) and "writeKey" not in message
        assert orjson.loads(raw) == message


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
    path=PATHS,
    body=BODIES,
    headers=st.dictionaries(
        st.sampled_from(["content-encoding", "authorization", "content-type", "x-any"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        max_size=4,
    ),
)
def test_routes_answer_whatever_arrives(
    method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    receiver = Receiver(ListenOptions(write_key="wk_fuzz_key_0123"))
    request = Request(
        method, path, Headers([(k.encode(), v.encode()) for k, v in headers.items()]), body
    )
    response = receiver.routes.answer(request)
    if response.then is not None:
        response.then()
    assert response.status in (200, 400, 401, 404, 405, 500)
    assert isinstance(orjson.loads(response.body), dict)
    accepted = receiver.stats.accepted
    assert (response.status == 200 and method == "POST") or accepted == 0
