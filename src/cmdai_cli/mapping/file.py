"""Which webhook mapping is in force, and mapping files.

A mapping file is a TOML file whose top-level `[mapping]` table is a webhook mapping.
It is read and parsed here, then handed to `webhook.parse_mapping`, adding the line of
the offending key to any error. `resolve_mapping` is the one place that decides
between a `--mapping` file and the profile's `mapping` setting.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmdai_cli import settings_file
from cmdai_cli.errors import DataError
from cmdai_cli.mapping.webhook import WebhookMapping, parse_mapping

if TYPE_CHECKING:
    from cmdai_cli.profile import Resolved

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["load_mapping_file", "resolve_mapping"]

# A mapping names a few dozen paths; a megabyte of them is not a mapping.
MAPPING_LIMIT = settings_file.MiB
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def resolve_mapping(path: str | Path | None, settings: Resolved) -> WebhookMapping:
    """The webhook mapping in force: the `--mapping` file, else the profile's, else none.

    `path` is the `--mapping` flag; `settings` the resolved profile, whose `mapping`
    table is used when there is no file. Neither means the whole event is the body.
    Raises DataError naming the file, or the profile's config file and table.
    """
    if path is not None:
        return load_mapping_file(path)
    return parse_mapping(
        settings.get("mapping"),
        source=f"{settings.path} [profiles.{settings.profile}.mapping]",
    )


def load_mapping_file(path: str | Path) -> WebhookMapping:
    """The `[mapping]` table of the TOML file at `path`, validated.

    An empty `[mapping]` table means the whole event is the body; a file without one is
    refused.
    Raises DataError naming the file, the key and (when known) the line.
    """
    source = str(path)
    try:
        data = settings_file.read(
            path,
            what="mapping file",
            limit=MAPPING_LIMIT,
            fail=lambda reason: DataError(reason, source=source),
        )
    except FileNotFoundError:
        raise DataError("no such mapping file", source=source) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a mapping file", source=source) from None
    except OSError as exc:
        raise DataError(f"cannot read the mapping file: {exc.strerror}", source=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    return _parse_text(text, source=source)


def _parse_text(text: str, *, source: str) -> WebhookMapping:
    """Parse mapping-file TOML `text`; errors name `source`."""
    try:
        document = settings_file.loads_toml(
            text, fail=lambda reason: DataError(reason, source=source)
        )
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        reason = _TOML_POSITION.sub("", message).strip()
        line = int(position.group(1)) if position else None
        raise DataError(f"invalid TOML: {reason}", source=source, line=line) from None
    table: Any = document.get("mapping")
    if table is None:
        # Most likely the keys sit at the top level or under another table's name: an
        # empty mapping (the whole event) would be the wrong thing to go on with.
        keys = ", ".join(sorted(document)[:5])
        raise DataError(
            "no [mapping] table" + (f" (the file has: {keys})" if keys else " (the file is empty)"),
            source=source,
            hint="put the body fields under [mapping]; an empty [mapping] table sends the "
            "whole event",
        )
    if not isinstance(table, dict):
        raise DataError(
            "'mapping' must be a table ([mapping])",
            source=source,
            line=_line_of(text, None, "mapping"),
            field="mapping",
        )
    try:
        return parse_mapping(table, source=source)
    except DataError as exc:
        if exc.line is None and exc.field:
            exc = DataError(
                exc.reason,
                source=exc.source,
                line=_line_of(text, "mapping", exc.field),
                field=exc.field,
                hint=exc.hint,
            )
        raise exc from None


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """The line where `key` is set inside `[table]` (None: top level), when it can be found."""
    current: str | None = None
    candidates = [key, f'"{key}"', f"'{key}'"]
    if "." in key:
        # Written unquoted, `a.b = ...` nests; the last part is what starts the line.
        head, _, tail = key.partition(".")
        candidates.append(f"{head}.{tail}")
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).strip("\"'")
            continue
        stripped = line.lstrip()
        for candidate in candidates:
            if (current == table or (table is None and current is None)) and stripped.startswith(
                candidate
            ):
                after = stripped[len(candidate) :].lstrip()
                if after.startswith("="):
                    return number
        if table is not None and current is None and stripped.startswith(f"{table}."):
            # Dotted top-level form: `mapping.userId = "$.userId"`.
            rest = stripped[len(table) + 1 :]
            for candidate in candidates:
                if rest.startswith(candidate) and rest[len(candidate) :].lstrip().startswith("="):
                    return number
    return None
