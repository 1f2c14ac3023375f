"""docs/cli.md: every command's --help, generated from the app, and never stale."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import typer
from typer._click import Context

ROOT = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "scripts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_are_current() -> None:
    path = ROOT / "docs" / "cli.md"
    assert path.exists(), "docs/cli.md is missing: run python scripts/generate.py"
    assert path.read_text(encoding="utf-8") == generator().render_docs(), (
        "docs/cli.md is stale: run python scripts/generate.py"
    )


def test_docs_hold_every_command_and_its_help() -> None:
    gen = generator()
    text = gen.render_docs()
    root, ctx = gen.root_context()
    paths = []
    for cmd, sub_ctx in gen.walk(root, ctx):
        paths.append(sub_ctx.command_path)
        assert f"\n## {sub_ctx.command_path}\n" in text
        assert f"- [`{sub_ctx.command_path}`]" in text
        first_line = (cmd.help or "").strip().splitlines()[0]
        assert first_line in text, sub_ctx.command_path
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert opt in text, f"{sub_ctx.command_path} {opt}"
    assert len(paths) == len(set(paths))
    assert {"cmdai", "cmdai doctor", "cmdai completion", "cmdai profile list"} <= set(paths)


def test_docs_do_not_depend_on_the_terminal(monkeypatch) -> None:
    gen = generator()
    first = gen.render_docs()
    monkeypatch.setenv("COLUMNS", "40")
    assert gen.render_docs() == first


def test_help_in_docs_is_what_the_command_prints(cli) -> None:
    text = generator().render_docs()
    section = text.split("## cmdai doctor\n\n```text\n", 1)[1].split("\n```", 1)[0]
    printed = cli("doctor", "--help").stdout
    # Same words; only the wrapping width may differ.
    assert section.split() == printed.split()


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    gen = generator()
    files = gen.outputs()
    assert gen.stale(files) == []
    changed = {tmp_path / "cli.md": "old text\n"}
    assert gen.stale(changed) == [tmp_path / "cli.md"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_walk_visits_nested_groups() -> None:
    gen = generator()
    app = typer.Typer()
    inner = typer.Typer(help="Inner group.")

    @inner.command("leaf")
    def leaf() -> None:
        """A leaf."""

    @app.command("top")
    def top() -> None:
        """Top command."""

    app.add_typer(inner, name="inner")
    root = typer.main.get_command(app)
    ctx = Context(root, info_name="x")
    assert [c.command_path for _, c in gen.walk(root, ctx)] == [
        "x",
        "x top",
        "x inner",
        "x inner leaf",
    ]


def test_json_streams_end_with_one_summary_line_as_the_reference_says(cli, tmp_path: Path) -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "`listen --json`" in reference and "`validate --json`" in reference
    assert '`{"summary": {...}}`' in reference
    events = tmp_path / "events.ndjson"
    events.write_text('{"type":"track","userId":"u1","event":"Not Planned"}\n')
    validated = cli("validate", "--json", str(events)).stdout.splitlines()
    for lines in (validated, listened(tmp_path)):
        parsed = [json.loads(line) for line in lines]
        assert set(parsed[-1]) == {"summary"} and isinstance(parsed[-1]["summary"], dict)
        assert all("summary" not in item for item in parsed[:-1]), lines


def listened(tmp_path: Path) -> list[str]:
    """`listen --json`'s stdout for one message sent through the Python SDK."""
    from segment.analytics import Client

    ready = tmp_path / "collector.url"
    with subprocess.Popen(
        [
            *(sys.executable, "-m", "cmdai_cli", "listen", "--json", "--port", "0"),
            *("--exit-after", "1", "--max-duration", "20", "--ready-file", str(ready)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 10
        while not (ready.exists() and ready.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, "listen did not start"
            time.sleep(0.02)
        sdk = Client("wk_docs_stream_0123", host=ready.read_text().strip(), max_retries=0)
        sdk.track("u1", "Opened", {"type": "opened"})
        sdk.flush()
        sdk.join()
        out, _ = proc.communicate(timeout=20)
    return out.splitlines()
