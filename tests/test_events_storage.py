"""Events from object storage: listing, streaming, the archive layout, and the errors."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cmdai_cli.errors import ConfigError, DataError
from cmdai_cli.events import storage
from cmdai_cli.events.archive import day_of, skipped_by_since
from cmdai_cli.events.inputs import ReadStats, expand_inputs
from cmdai_cli.events.reader import read_batches
from tests.s3_archive import DAY0, S3, day_folder, make_archive, s3, s3_server

__all__ = ["s3", "s3_server"]  # fixtures


def events_of(specs: list[str], **kwargs: object) -> list[dict[str, object]]:
    inputs = expand_inputs(specs, **kwargs)  # type: ignore[arg-type]
    return [ev.value for batch in read_batches(inputs) for ev in batch]


# ---------------------------------------------------------------- the layout


def test_day_folders_are_utc_midnights_in_milliseconds() -> None:
    assert day_of(day_folder(DAY0)) == DAY0
    assert day_of("1746057600001") is None  # not a midnight
    assert day_of("174605760000") is None  # 12 digits
    assert day_of("report") is None


def test_since_skips_a_folder_only_when_its_whole_day_is_before_it() -> None:
    folder = ["bucket", "segment-logs", "src", day_folder(DAY0), "a.gz"]
    assert skipped_by_since(folder, DAY0 + timedelta(days=1))
    assert not skipped_by_since(folder, DAY0 + timedelta(hours=23, minutes=59))
    assert not skipped_by_since(["bucket", "plain", "a.gz"], DAY0 + timedelta(days=9))


# ---------------------------------------------------------------- listing and reading


def test_a_prefix_is_every_object_under_it_in_order_with_sizes_and_versions(s3: S3) -> None:
    archive = make_archive(s3, days=2, files_per_day=2)
    inputs = expand_inputs([archive.prefix])
    assert [i.name for i in inputs] == sorted(archive.objects)
    assert all(i.url == i.name and i.path is None for i in inputs)
    assert [i.size for i in inputs] == [archive.objects[i.name] for i in inputs]
    assert all(i.version and len(i.version) == 32 for i in inputs)  # an MD5 ETag, unquoted
    # The bucket as a whole, and a glob, name the same objects.
    assert [i.name for i in expand_inputs([f"s3://{archive.bucket}"])] == sorted(archive.objects)
    pattern = f"s3://{archive.bucket}/segment-logs/*/*/*.gz"
    assert [i.name for i in expand_inputs([pattern])] == sorted(archive.objects)


def test_objects_are_read_gunzipped_and_counted_as_stored(s3: S3) -> None:
    archive = make_archive(s3, days=2, files_per_day=2, events_per_file=25)
    stats = ReadStats()
    values = events_of([archive.prefix], stats=stats)
    assert {v["messageId"] for v in values} == set(archive.events)
    assert len(values) == 100
    assert stats.files == 4
    assert stats.bytes == sum(archive.objects.values())


def test_one_object_by_its_url(s3: S3) -> None:
    archive = make_archive(s3, days=1, files_per_day=2)
    url = sorted(archive.objects)[1]
    assert {v["messageId"] for v in events_of([url])} == archive.ids([url])


def test_since_leaves_earlier_day_folders_unopened(s3: S3) -> None:
    # The first two days are not gzip: opening any of them would be a bad record.
    archive = make_archive(s3, days=4, files_per_day=2, corrupt_days=2)
    since = DAY0 + timedelta(days=2, hours=5)
    stats = ReadStats()
    values = events_of([archive.prefix], since=since, stats=stats)
    later = [u for u, day in archive.days.items() if day >= DAY0 + timedelta(days=2)]
    assert stats.files == len(later) == 4
    assert {v["messageId"] for v in values} == archive.ids(later)
    pattern = f"s3://{archive.bucket}/segment-logs/*/*/*.gz"
    assert sorted(i.name for i in expand_inputs([pattern], since=since)) == sorted(later)


def test_since_prunes_a_local_copy_of_the_archive_by_glob_too(tmp_path: Path) -> None:
    for d in range(3):
        folder = tmp_path / "segment-logs" / "src" / day_folder(DAY0 + timedelta(days=d))
        folder.mkdir(parents=True)
        (folder / "a.gz").write_bytes(gzip.compress(b'{"type":"track"}\n'))
    pattern = str(tmp_path / "segment-logs" / "src" / "*" / "*.gz")
    kept = expand_inputs([pattern], since=DAY0 + timedelta(days=1, hours=1))
    assert [Path(i.name).parent.name for i in kept] == [
        day_folder(DAY0 + timedelta(days=1)),
        day_folder(DAY0 + timedelta(days=2)),
    ]


def test_missing_objects_and_empty_patterns_are_data_errors(s3: S3) -> None:
    archive = make_archive(s3, days=1, files_per_day=1)
    with pytest.raises(DataError, match="no such bucket, object or prefix"):
        expand_inputs([f"s3://{archive.bucket}/nothing-here/"])
    with pytest.raises(DataError, match="no object matches"):
        expand_inputs([f"s3://{archive.bucket}/segment-logs/*/*/*.ndjson"])


def test_the_generic_endpoint_variable_is_honoured(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(s3, days=1, files_per_day=1)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setattr(storage, "_filesystems", {})
    assert len(events_of([archive.prefix])) == 40


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_missing_backend_names_the_extra_to_install(cli) -> None:
    with pytest.raises(ConfigError) as info:
        expand_inputs(["gs://bucket/segment-logs/"])
    assert "'gcs' extra" in info.value.message and "cmdai[gcs]" in (info.value.hint or "")
    result = cli("map-payload", "gs://bucket/segment-logs/")
    assert result.exit_code == 3
    assert "cmdai[gcs]" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_protocol_is_a_usage_error(cli) -> None:
    result = cli("map-payload", "nosuchfs://bucket/x")
    assert result.exit_code == 2 and "nosuchfs://" in result.stderr


# ---------------------------------------------------------------- through the commands


def test_map_payload_reads_a_prefix_as_it_reads_the_same_files_on_disk(
    s3: S3, cli, tmp_path: Path
) -> None:
    archive = make_archive(s3, days=2, files_per_day=2, events_per_file=10)
    local = []
    fs = s3.client()
    for n, url in enumerate(sorted(archive.objects)):
        path = tmp_path / f"{n:02d}.gz"
        path.write_bytes(fs.cat(url))
        local.append(str(path))
    remote = cli("map-payload", archive.prefix, "--format", "ndjson")
    on_disk = cli("map-payload", *local, "--format", "ndjson")
    assert remote.exit_code == on_disk.exit_code == 0, remote.stderr
    assert remote.stdout == on_disk.stdout
    assert len(remote.stdout.splitlines()) == 40


def test_replay_since_reads_no_earlier_day_and_reports_what_it_read(s3: S3, cli) -> None:
    archive = make_archive(s3, days=4, files_per_day=2, events_per_file=10, corrupt_days=2)
    since = DAY0 + timedelta(days=2, hours=1)
    result = cli(
        "replay",
        archive.prefix,
        "--to",
        "segment",
        "--dry-run",
        "--since",
        since.isoformat(),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    later = [u for u, day in archive.days.items() if day >= DAY0 + timedelta(days=2)]
    assert summary["files_read"] == len(later) == 4
    assert summary["bytes_read"] == sum(archive.objects[u] for u in later)
    expected = [
        e
        for e in archive.events.values()
        if datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) >= since
    ]
    assert summary["would_send"] == len(expected)
    assert summary["read"] == 40 and summary["filtered"] == 40 - len(expected)


def test_resume_after_an_object_changed_never_takes_it_as_done(
    s3: S3, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import WRITE_KEY
    from tests.fault_server import FaultServer

    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    archive = make_archive(s3, days=1, files_per_day=2, events_per_file=10)
    checkpoint = tmp_path / "run.checkpoint"
    with FaultServer(write_key=WRITE_KEY) as server:
        base = ["replay", archive.prefix, "--to", "segment", "--host", server.url, "--json"]
        assert cli(*base, "--checkpoint", str(checkpoint)).exit_code == 0
        url = sorted(archive.objects)[0]
        s3.client().pipe(url, gzip.compress(b'{"type":"track","event":"x","userId":"u"}\n'))
        refused = cli(*base, "--checkpoint", str(checkpoint), "--resume")
        assert refused.exit_code == 2
        assert "has changed (size or version)" in refused.stderr
        # The default checkpoint is keyed by the objects' versions: a new run.
        assert cli(*base, "--resume").exit_code == 0
        again = cli(*base, "--resume")
        assert json.loads(again.stdout)["already_done"] == 11


# ---------------------------------------------------------------- failures and edges


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_endpoint_exits_6_in_one_line(
    s3: S3, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries, which would take seconds
    result = cli("map-payload", "s3://archive/segment-logs/")
    assert result.exit_code == 6
    assert "Could not connect" in result.stderr and "Traceback" not in result.stderr


def test_an_http_server_that_refuses_is_unreachable_and_a_404_is_missing(cli, httpserver) -> None:
    refused = cli("map-payload", f"http://127.0.0.1:{closed_port()}/events.ndjson.gz")
    assert refused.exit_code == 6, refused.stderr
    assert "cannot be reached" in refused.stderr and "no such" not in refused.stderr
    httpserver.expect_request("/missing.gz").respond_with_data("not here", status=404)
    missing = cli("map-payload", httpserver.url_for("/missing.gz"))
    assert missing.exit_code == 4, missing.stderr
    assert "no such bucket, object or prefix" in missing.stderr


def test_an_endpoint_that_never_answers_exits_6_within_the_timeouts(
    s3: S3, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setattr(storage, "S3_READ_TIMEOUT", 0.5)
    monkeypatch.setattr(storage, "S3_ATTEMPTS", 1)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections are taken, never answered
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{silent.getsockname()[1]}")
        result = cli("map-payload", "s3://archive/segment-logs/")
    assert result.exit_code == 6, result.stderr
    assert "timeout" in result.stderr.lower() and "Traceback" not in result.stderr


def test_backend_errors_become_ours() -> None:
    from cmdai_cli.errors import RemoteRefused, RemoteUnreachable

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise ConnectionResetError("reset by peer")

    stream = storage._Guarded(Failing(), "s3://b/k.gz")
    with pytest.raises(RemoteUnreachable, match=r"s3://b/k.gz: ConnectionResetError"):
        stream.read(10)
    with pytest.raises(RemoteRefused, match="access denied"):
        storage._fail(PermissionError("403"), "s3://b/k.gz")
    with pytest.raises(ConfigError, match="a package is missing"):
        storage._fail(ImportError("no aiohttp"), "https://x")


def test_a_stream_started_ahead_gives_its_head_first() -> None:
    stream = storage._Guarded(io.BytesIO(b"world"), "s3://b/k", head=b"hello ")
    with stream:
        assert stream.read(3) == b"hel"
        assert stream.read(-1) == b"lo world"
        assert stream.read(4) == b""


def test_read_ahead_fetches_the_next_object_and_survives_another_order(s3: S3) -> None:
    archive = make_archive(s3, days=1, files_per_day=3, events_per_file=5)
    urls = sorted(archive.objects)
    ahead = storage.ReadAhead([(url, archive.objects[url]) for url in urls])
    fs = s3.client()
    with ahead.open(urls[0], None) as first:
        assert gzip.decompress(first.read()) == gzip.decompress(fs.cat(urls[0]))
    # Out of order: what was fetched ahead (the second) is let go, the third read as asked.
    with ahead.open(urls[2], None) as third:
        assert third.read() == fs.cat(urls[2])
    with ahead.open(urls[1], archive.objects[urls[1]]) as second:
        assert second.read() == fs.cat(urls[1])


def test_hidden_objects_are_skipped_as_hidden_files_are(s3: S3) -> None:
    archive = make_archive(s3, days=2, files_per_day=1)
    fs = s3.client()
    fs.pipe(f"{archive.bucket}/segment-logs/.tmp/partial.gz", b"junk")
    day = archive.prefix + day_folder(DAY0 + timedelta(days=1)) + "/"
    fs.pipe(day[len("s3://") :] + ".in-progress.gz", b"junk")
    names = [i.name for i in expand_inputs([f"s3://{archive.bucket}/segment-logs/"])]
    assert names == sorted(archive.objects)
    later = expand_inputs([archive.prefix], since=DAY0 + timedelta(days=1, hours=2))
    assert [i.name for i in later] == sorted(archive.objects)[1:]
