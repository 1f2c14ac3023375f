"""Draw the README's picture of `cmdai status`: a run against the Public API stand-in.

    python scripts/status_picture.py            # writes docs/status.png, prints the text

The text is what `cmdai status` prints when piped (ASCII, 80 columns); the PNG is the
same view as a terminal shows it, exported by Rich as HTML and photographed by headless
Chromium (`chromium --headless --screenshot`).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import CONSOLE_HTML_FORMAT, Console  # noqa: E402
from rich.terminal_theme import MONOKAI  # noqa: E402

from cmdai_cli.commands._status_view import view  # noqa: E402
from cmdai_cli.workspace import status as core  # noqa: E402
from tests.fake_public_api import running  # noqa: E402

WIDTH = 80
HOOK = "https://api.command.ai/hooks/o1"


def main() -> int:
    with running("picture-token") as api:
        source = api.seed_status(write_key="picture-key", webhook_url=HOOK, names=12)
        api.volume[source["id"]][("Nuge Shown", "track")] = [0] * 20 + [3, 1, 0, 2]
        env = {
            **os.environ,
            "CMDAI_CONFIG_DIR": tempfile.mkdtemp(),
            "CMDAI_PUBLIC_API_TOKEN": "picture-token",
            "CMDAI_API_HOST": api.url,
            "CMDAI_WRITE_KEY": "picture-key",
            "CMDAI_ORG_ID": "org-1",
            "CMDAI_WEBHOOK_URL": HOOK,
            "COLUMNS": str(WIDTH),
        }
        text = subprocess.run(
            [sys.executable, "-m", "cmdai_cli", "status"], env=env, capture_output=True, text=True
        ).stdout
        request = core.StatusRequest(
            api_host=api.url,
            token="picture-token",
            write_key="picture-key",
            org_id="org-1",
            webhook_url=HOOK,
        )
        result = core.run(request)
    print("$ cmdai status")
    print(text, end="")
    console = Console(
        record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=io.StringIO()
    )
    console.print(view(result, WIDTH, ascii_only=False), soft_wrap=False)
    lines = console.export_text(clear=False).count("\n") + 1
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.stderr.write("no chromium: docs/status.png not drawn\n")
        return 1
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "status.html"
        # Rich's page, with room between lines: the sparklines' block characters fill a
        # line's height, and without it the rows of the event table run together.
        spaced = CONSOLE_HTML_FORMAT.replace('<pre style="', '<pre style="line-height:1.45;')
        console.save_html(str(page), theme=MONOKAI, code_format=spaced)
        out = ROOT / "docs" / "status.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                f"--window-size={WIDTH * 10 + 24},{lines * 23 + 60}",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
