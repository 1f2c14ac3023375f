"""Tracking plans: rules with JSON Schemas, the built-in plan, and checking events.

    from cmdai_cli.plans import Validator, builtin_plan, load_plan

    validator = Validator(load_plan("plan.json"))   # or Validator(builtin_plan())
    violations = validator.check(message)           # [] when the message keeps the plan

Importing this package is cheap; the JSON Schema libraries load when a Validator is built.
`plans.run` is `cmdai validate`'s core (it reads events, so it is not loaded here).
"""

from __future__ import annotations

from cmdai_cli.plans.builtin import builtin_plan
from cmdai_cli.plans.check import KINDS, Validator, Violation, event_label, plan_flags
from cmdai_cli.plans.rules import Plan, Rule, load_plan, parse_plan, save_plan

__all__ = [
    "KINDS",
    "Plan",
    "Rule",
    "Validator",
    "Violation",
    "builtin_plan",
    "event_label",
    "load_plan",
    "parse_plan",
    "plan_flags",
    "save_plan",
]
