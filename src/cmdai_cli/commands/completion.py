"""`cmdai completion SHELL`: print the Tab-completion script for a named shell."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli._fast_typer import completion_script
from cmdai_cli.commands._common import COMPLETE_VAR, command, finish
from cmdai_cli.results import Done

PROG_NAME = "cmdai"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    command(app, "completion")(completion)


def script_for(shell: str) -> str:
    """The completion script for `shell`, as `completions/` holds it."""
    return completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def completion(
    shell: Annotated[
        Shell,
        typer.Argument(
            help="The shell to print the script for: bash, zsh or fish.",
            metavar="SHELL",
            show_default=False,
        ),
    ],
) -> None:
    """Print the Tab-completion script for SHELL on stdout.

    The shell is named, never detected, so this works the same in CI and containers.

    \b
    Install it (then open a new shell):
      bash  cmdai completion bash > ~/.local/share/bash-completion/completions/cmdai
      zsh   cmdai completion zsh > ~/.zfunc/_cmdai  (~/.zshrc: fpath+=~/.zfunc before compinit)
      fish  cmdai completion fish > ~/.config/fish/completions/cmdai.fish
    """
    finish(
        Script(shell.value, script_for(shell.value)), lambda done: output.out(done.text.rstrip())
    )


@dataclass(frozen=True)
class Script(Done):
    """A shell's completion script, as `completions/` holds it."""

    shell: str
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"shell": self.shell, "script": self.text}
