"""`regdb registries create -f FILE`: one entry, a JSON array or NDJSON, through the API.

Every document is sent on its own (POST /container_registry), so one refusal does not stop the
others; the report names each refused document by the line it starts on, and the exit code is 1
when any was refused. `--dry-run` validates with the server's own model and sends nothing.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any

from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from regdb.client.commands import OK, REFUSED, read_text
from regdb.client.documents import Document, read_documents
from regdb.client.http import Api, ApiError, ClientError, Unreachable, UsageError
from regdb.client.render import Output

ID_FIELD = "container_registry_id"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one document (`status` is the server's, None when nothing was sent)."""

    line: int
    ok: bool
    id: str | None = None
    status: int | None = None
    error: str | None = None
    details: Any = None


def _given_id(value: Any) -> str | None:
    """The id a document asks for, when it is a string (anything else the server refuses)."""
    given = value.get(ID_FIELD) if isinstance(value, dict) else None
    return given if isinstance(given, str) else None


def _send(api: Api, doc: Document) -> Outcome:
    if doc.error is not None:
        return Outcome(doc.line, False, error=doc.error)
    try:
        reply = api.call("POST", "/container_registry", body=doc.value, retry=False)
    except ApiError as exc:
        return Outcome(doc.line, False, _given_id(doc.value), exc.status, exc.message, exc.details)
    return Outcome(doc.line, True, reply.data.get("id"), reply.status)


def _check(doc: Document, seen: dict[str, int]) -> Outcome:
    """Validate one document locally with the server's model (regdb.model.validate_entry)."""
    from regdb.errors import InvalidInput
    from regdb.model import now_rfc3339, validate_entry

    if doc.error is not None:
        return Outcome(doc.line, False, error=doc.error)
    stamp = now_rfc3339()
    try:
        entry = validate_entry(doc.value, created_at=stamp, updated_at=stamp)
    except InvalidInput as exc:
        return Outcome(doc.line, False, error=exc.message, details=exc.details)
    given = _given_id(doc.value)
    if given is not None:
        if given in seen:
            return Outcome(
                doc.line, False, given, error=f"{ID_FIELD} {given!r} is also on line {seen[given]}"
            )
        seen[given] = doc.line
    return Outcome(doc.line, True, entry[ID_FIELD] if given is not None else None)


def _report(out: Output, outcomes: list[Outcome], *, dry_run: bool) -> int:
    refused = [o for o in outcomes if not o.ok]
    if out.json:
        out.data([asdict(o) for o in outcomes])
    else:
        table = Table("line", "result", "id")
        for o in outcomes:
            word = ("valid" if dry_run else "created") if o.ok else "refused"
            if o.status is not None and not o.ok:
                word += f" ({o.status})"
            table.add_row(str(o.line), Text(word, style="green" if o.ok else "red"), o.id or "")
        out.data(None, table)
    for o in refused:
        out.error(ClientError(o.error or "refused", o.details), prefix=f"line {o.line}: ")
    good = len(outcomes) - len(refused)
    if dry_run:
        out.note(f"dry run, nothing sent: {good} valid, {len(refused)} refused")
    else:
        out.note(f"{good} created, {len(refused)} refused")
    return REFUSED if refused else OK


def registries_create(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Create the entries of a file: one object, an array, or NDJSON."""
    docs = read_documents(read_text(args.file))
    if docs.single and docs.items[0].error is not None:
        raise UsageError(f"{args.file} line {docs.items[0].line}: {docs.items[0].error}")
    if args.dry_run:
        seen: dict[str, int] = {}
        return _report(out, [_check(d, seen) for d in docs.items], dry_run=True)
    if docs.single:  # one entry: answered like every other command
        reply = api.call("POST", "/container_registry", body=docs.items[0].value, retry=False)
        out.data(reply.data, f"created {reply.data.get('id')}")
        return OK
    outcomes: list[Outcome] = []
    lost: Unreachable | None = None
    # The bar is for a person watching; in a log or a pipe it would only add noise.
    with Progress(console=out.err, transient=True, disable=not out.err.is_terminal) as bar:
        task = bar.add_task("creating", total=len(docs.items))
        for doc in docs.items:
            try:
                outcomes.append(_send(api, doc))
            except Unreachable as exc:  # report what was done before giving up
                lost = Unreachable(f"stopped at line {doc.line}: {exc.message}")
                break
            bar.advance(task)
    if lost is not None and not outcomes:
        raise lost
    code = _report(out, outcomes, dry_run=False)
    if lost is not None:
        raise lost
    return code
