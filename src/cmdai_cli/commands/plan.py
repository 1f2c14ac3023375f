"""`cmdai plan`: show a tracking plan, and pull one from Segment Protocols into a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import command, finish, quiet_stdout, resolve_settings
from cmdai_cli.commands._common import group as new_group
from cmdai_cli.commands._options import ApiHostOpt, ApiTimeoutOpt, TokenOpt
from cmdai_cli.errors import UsageError
from cmdai_cli.values import plural

if TYPE_CHECKING:
    from cmdai_cli.plans import Plan, Rule
    from cmdai_cli.plans.pull import PullResult

group = new_group("Tracking plans: show the built-in one or a plan file, pull one from Segment.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="plan")


@command(group, "show")
def show(
    plan_file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="Plan file to show.", show_default=False),
    ] = None,
    builtin: Annotated[
        bool,
        typer.Option("--builtin", help="Show the built-in plan of Command AI's events."),
    ] = False,
) -> None:
    """Show a plan's rules: the built-in plan (--builtin) or a plan FILE.

    With --json: the plan as a plan file (`cmdai plan show --builtin --json > plan.json`
    gives a starting point to edit for --plan).
    """
    # Imported here: `plans` costs about 5 ms (python -X importtime) that --help and Tab
    # completion never need.
    from cmdai_cli import plans

    if builtin == (plan_file is not None):
        raise UsageError("give a plan FILE or --builtin (one of them)")
    plan = plans.builtin_plan() if plan_file is None else plans.load_plan(plan_file)
    finish(plan, _render_plan)


def _render_plan(plan: Plan) -> None:
    rules = len(plan.rules)
    lines = [f"{plan.name}: {rules} {plural(rules, 'rule')}"]
    for rule in plan.rules:
        lines.extend(_rule_lines(rule))
    try:
        output.out("\n".join(lines))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and a clean exit.
        quiet_stdout()


def _rule_lines(rule: Rule) -> list[str]:
    lines = [f"{rule.label} (version {rule.version})"]
    described = rule.schema.get("properties")
    if not isinstance(described, dict) or not described:
        return [*lines, "  (any event of this kind)"]
    for part, schema in described.items():
        if not isinstance(schema, dict):
            continue
        fields = schema.get("properties")
        required = set(schema.get("required") or [])
        if not isinstance(fields, dict) or not fields:
            lines.append(f"  {part}: {_type_of(schema)}")
            continue
        extra = "" if schema.get("additionalProperties") is not False else " (no others)"
        lines.append(f"  {part}{extra}:")
        for name, sub in fields.items():
            flag = ", required" if name in required else ""
            lines.append(f"    {name}: {_type_of(sub)}{flag}")
    return lines


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(kind, str):
        return kind
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        return " or ".join(_type_of(s) for s in branches)
    return "any"


@command(group, "pull")
def pull(
    tracking_plan: Annotated[
        str,
        typer.Option(
            "--tracking-plan", help="Id of the Segment Protocols tracking plan.", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the plan file here (default: print it on stdout).",
            show_default=False,
        ),
    ] = None,
    token: TokenOpt = None,
    api_host: ApiHostOpt = None,
    timeout: ApiTimeoutOpt = 15.0,
) -> None:
    """Read a Protocols tracking plan's rules through the Public API into a plan file.

    The file is what `cmdai validate --plan` reads, so validation then runs offline.
    """
    # Imported here: the Public API client loads httpx and the profile pydantic, about
    # 270 ms (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.plans.pull import PullRequest
    from cmdai_cli.plans.pull import pull as pull_plan

    request = PullRequest(
        settings=resolve_settings({"public_api_token": token, "api_host": api_host}),
        plan_id=tracking_plan,
        out=out,
        timeout=timeout,
    )
    finish(pull_plan(request, on_wait=output.warn), _render_pull)


def _render_pull(result: PullResult) -> None:
    if result.out is None:
        # No --out: the plan file is the command's data, on stdout.
        output.emit_json(result.as_json())
        return
    counts = ", ".join(f"{kind} {n}" for kind, n in result.by_type.items()) or "none"
    output.out(
        f"Wrote {len(result.plan.rules)} rules ({counts}) of '{result.plan.name}' to {result.out}"
    )
