"""Sending a change set's writes: in order, and saying which were done when one fails part-way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from cmdai_cli.destination.changes import Change, ChangeSet, slot
from cmdai_cli.errors import CmdaiError, PartialFailure, RemoteRefused

if TYPE_CHECKING:
    from cmdai_cli.public_api import PublicApi
    from cmdai_cli.results import Result


class PartialApply(PartialFailure):
    """Some writes were sent and one failed; the rest were not sent."""

    def __init__(self, done: list[Change], not_done: list[Change], cause: CmdaiError) -> None:
        self.done = done
        self.not_done = not_done
        self.cause = cause
        message = (
            f"stopped part-way: {cause.message}. Done: "
            + ("; ".join(w.what for w in done) or "nothing")
            + ". Not done: "
            + ("; ".join(w.what for w in not_done) or "nothing else")
            + ". Run the same command again to finish"
        )
        # The command's result so far, set by `configure`: `--json` still prints it.
        self.result: Result | None = None
        super().__init__(message, hint=cause.hint)


def apply(
    client: PublicApi, changeset: ChangeSet, *, on_done: Callable[[Change], None] | None = None
) -> list[Change]:
    """Send the change set's writes in order; the writes done, or PartialApply / the first error."""
    ids: dict[str, str] = {}
    done: list[Change] = []
    for index, write in enumerate(changeset.changes):
        path = write.path
        if write.needs:
            path = path.replace(slot(write.needs), quote(ids[write.needs], safe=""))
        try:
            data = client.call(write.method, path, body=write.body, alpha=write.alpha)
            if write.creates:
                created = data.get("destination")
                new_id = created.get("id") if isinstance(created, dict) else None
                if not new_id:
                    done.append(write)
                    raise PartialApply(
                        done,
                        changeset.changes[index + 1 :],
                        RemoteRefused(
                            f"Segment created the {write.creates} destination but did not "
                            "say its id"
                        ),
                    )
                ids[write.creates] = str(new_id)
        except PartialApply:
            raise
        except CmdaiError as exc:
            if not done:
                raise
            raise PartialApply(done, changeset.changes[index:], exc) from None
        done.append(write)
        if on_done is not None:
            on_done(write)
    return done
