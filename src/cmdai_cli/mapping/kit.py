"""What Segment's mapping-kit does to the values it maps, beyond finding them.

Every destination built on actions-core maps an event with mapping-kit's `transform`
(segmentio/action-destinations, `packages/core/src/mapping-kit/index.ts`): `resolve`
finds each field's value in the event as `JSON.parse` made it, then `removeUndefined`
(`packages/core/src/remove-undefined.ts`) copies every object it reaches with
`Object.assign({}, value)`, arrays item by item. Assigning an own `"__proto__"` key to
the copy runs `Object.prototype`'s `__proto__` setter (ECMA-262,
`Object.prototype.__proto__`): the copy's prototype changes (when the value is an
object or null) or nothing happens, and either way the copy has no such own key, so
`JSON.stringify` and the SDK calls never see it, at any depth. The CommandBar
destination (browser runtime, `packages/browser-destination-runtime/src/plugin.ts`)
and the Webhooks destination (its `data` field, `$.` by default) both go through it.

Non-finite numbers pass through `transform` untouched (`JSON.stringify` writes them as
null), and so do lone surrogates; only the output writers need to know about them.

The reader marks an event holding such a key as `ProtoKeys`, so ordinary events skip
this step entirely.
"""

from __future__ import annotations

from typing import Any

from cmdai_cli.events.records import ProtoKeys

__all__ = ["PROTO", "ProtoKeys", "assign_copy"]

PROTO = "__proto__"


def assign_copy(value: Any) -> Any:
    """`removeUndefined(value)`'s copy for a JSON value: every own `__proto__` key gone.

    Order is kept; nothing else changes (a JSON value holds no undefined).
    """
    kind = type(value)
    if not (kind is dict or kind is list or isinstance(value, (dict, list))):
        return value
    root: Any = {} if isinstance(value, dict) else []
    # An explicit stack: values nest deeper than Python recurses.
    pending: list[tuple[Any, Any]] = [(value, root)]
    while pending:
        source, copy = pending.pop()
        if isinstance(source, dict):
            for key, item in source.items():
                if key == PROTO:
                    continue
                copy[key] = _copy_of(item, pending)
        else:
            for item in source:
                copy.append(_copy_of(item, pending))
    return root


def _copy_of(item: Any, pending: list[tuple[Any, Any]]) -> Any:
    if isinstance(item, dict):
        inner: Any = {}
    elif isinstance(item, list):
        inner = []
    else:
        return item
    pending.append((item, inner))
    return inner
