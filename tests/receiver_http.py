"""Helpers for the receiver tests: real HTTP requests to a receiver on loopback."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from typing import Any

from cmdai_cli.receiver import Receiver

KEY = "wk_TESTSECRET_0123456789abcdef"


def post(
    receiver: Receiver,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        data = raw if raw is not None else json.dumps(body).encode()
        conn.request(
            "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def msg(kind: str = "track", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "userId": "u1", "messageId": str(uuid.uuid4())}
    if kind == "track":
        base["event"] = "Opened"
    if kind == "group":
        base["groupId"] = "g1"
    if kind == "alias":
        base["previousId"] = "anon-1"
    base.update(fields)
    return base
