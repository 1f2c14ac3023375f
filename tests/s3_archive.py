"""A real S3 API on loopback (moto's server mode) and a fake Segment archive in it.

The archive has Segment's layout, `segment-logs/{source-id}/{received-day}/{file}.gz`
with the day as UTC milliseconds, and gzip NDJSON events whose `timestamp` falls in
the day they were received.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

DAY0 = datetime(2025, 5, 1, tzinfo=timezone.utc)
SOURCE = "Ab12Cd34"


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day_folder(day: datetime) -> str:
    return str(int(day.timestamp() * 1000))


@dataclass
class S3:
    """The loopback server: its endpoint, and an s3fs client for setting up objects."""

    endpoint: str
    env: dict[str, str]

    def client(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
            use_listings_cache=False,
        )


@dataclass
class Archive:
    """What was written: every event by messageId, and each object's URL, size and day."""

    bucket: str
    prefix: str  # s3://bucket/segment-logs/SOURCE/
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)  # url -> bytes
    days: dict[str, datetime] = field(default_factory=dict)  # url -> received day
    ids_by_object: dict[str, list[str]] = field(default_factory=dict)

    def ids(self, urls: Any = None) -> set[str]:
        chosen = self.objects if urls is None else urls
        return {i for url in chosen for i in self.ids_by_object[url]}


def _aws_env(endpoint: str, home: Path) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Nothing from the machine's own AWS set-up, and no instance metadata lookups.
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield S3(endpoint, _aws_env(endpoint, tmp_path_factory.mktemp("aws")))
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """The server, with this process (and the processes it starts) pointed at it."""
    from cmdai_cli.events import storage

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Each test's filesystem sees this test's environment.
    monkeypatch.setattr(storage, "_filesystems", {})
    return s3_server


def make_archive(
    s3: S3,
    *,
    days: int = 4,
    files_per_day: int = 3,
    events_per_file: int = 40,
    corrupt_days: int = 0,
) -> Archive:
    """A fresh bucket holding a Segment archive; the first `corrupt_days` days' objects
    are not gzip at all (so a run that opened one would fail on it)."""
    fs = s3.client()
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    archive = Archive(bucket, f"s3://{bucket}/segment-logs/{SOURCE}/")
    for d in range(days):
        day = DAY0 + timedelta(days=d)
        for f in range(files_per_day):
            lines = []
            ids = []
            for i in range(events_per_file):
                when = day + timedelta(hours=f, minutes=i)
                message_id = f"m-{d}-{f}-{i}"
                event = {
                    "type": "track",
                    "event": "Report Viewed",
                    "userId": f"user-{i % 7}",
                    "messageId": message_id,
                    "timestamp": iso(when),
                    "receivedAt": iso(when + timedelta(seconds=2)),
                    "properties": {"n": i, "day": d},
                }
                archive.events[message_id] = event
                ids.append(message_id)
                lines.append(json.dumps(event))
            body = gzip.compress(("\n".join(lines) + "\n").encode())
            if d < corrupt_days:
                body = b"this object must never be opened\n" * 3
            name = f"{day_folder(day)}/{int(when.timestamp() * 1000)}.{uuid.uuid4()}.gz"
            key = f"{bucket}/segment-logs/{SOURCE}/{name}"
            fs.pipe(key, body)
            url = f"s3://{key}"
            archive.objects[url] = len(body)
            archive.days[url] = day
            archive.ids_by_object[url] = ids
    return archive
