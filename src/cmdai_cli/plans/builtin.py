"""The plan cmdai ships: one rule per event of Command AI's catalogue, and cmdai's test event.

Each rule's schema is the JSON Schema of the event's model in `catalogue.py` (pydantic
writes it), made plain: titles dropped, and `anyOf` lists that only name types become
one `type` list, so a wrong type is reported as a datatype mismatch of that property.
Command AI keeps adding properties (the catalogue's models allow extras), so no rule
forbids additional properties; an event missing from the catalogue is unplanned.
"""

from __future__ import annotations

from typing import Any

from cmdai_cli.plans.rules import PAYLOAD_FIELD, Plan, Rule, event_schema

NAME = "Command AI event catalogue"
# Keywords that only describe: they never change what is valid.
_ANNOTATIONS = {"title", "description", "default", "examples"}


def plain(schema: Any) -> Any:
    """`schema` without annotations, with type-only `anyOf` lists merged into `type`."""
    if isinstance(schema, list):
        return [plain(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: plain(value) for key, value in schema.items() if key not in _ANNOTATIONS}
    # Constraints that allow everything: pydantic writes them for `Any` and `dict[str, Any]`.
    if out.get("items") == {}:
        del out["items"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    branches = out.get("anyOf")
    if isinstance(branches, list) and set(out) == {"anyOf"}:
        types = _only_types(branches)
        if types is not None:
            return {"type": types[0] if len(types) == 1 else types}
    return out


def _only_types(branches: list[Any]) -> list[str] | None:
    """The types the branches allow, when each is `{"type": t}` or an enum within one."""
    bare = [b["type"] for b in branches if isinstance(b, dict) and set(b) == {"type"}]
    if not all(isinstance(t, str) for t in bare):
        return None
    for branch in branches:
        if isinstance(branch, dict) and set(branch) == {"type"}:
            continue
        # A Literal beside its own base type (Literal[...] | str) allows no less than it.
        if isinstance(branch, dict) and set(branch) == {"type", "enum"} and branch["type"] in bare:
            continue
        return None
    return list(dict.fromkeys(bare))


def builtin_plan() -> Plan:
    """The built-in plan, from the catalogue."""
    # Imported here: the catalogue loads pydantic, about 70 ms (python -X importtime),
    # which importing `plans` (listen, expect --plan) does not pay without it.
    from cmdai_cli import catalogue

    rules = []
    # cmdai's own test event is planned too, so that `send-test` keeps a source clean
    # under the plan it ships (`listen --plan`, `validate`).
    for spec in (*catalogue.events(), catalogue.test_event_spec()):
        payload = plain(spec.model.model_json_schema())
        if spec.segment_type == "identify":
            rules.append(Rule("IDENTIFY", None, event_schema(PAYLOAD_FIELD["identify"], payload)))
        else:
            rules.append(Rule("TRACK", spec.name, event_schema(PAYLOAD_FIELD["track"], payload)))
    return Plan(NAME, tuple(rules), origin="builtin", meta={"source": "builtin"})
