"""Reading what the user gives the client: entry files, JSON arguments, `--set` options.

Pure: text in, values out, :class:`UsageError` for what cannot be read. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from regdb.client.http import UsageError

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Document:
    """One document of an input file: where it starts (1-based line) and its value, or why
    it could not be read (`error`, then `value` is None)."""

    line: int
    value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Documents:
    """What a file held: `single` when it was one JSON object (not an array or NDJSON)."""

    items: list[Document]
    single: bool


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _array(text: str, start: int) -> list[Document]:
    """The items of a JSON array that starts at `start`, each with the line it starts on."""
    items: list[Document] = []
    pos = _skip(text, start + 1)
    if pos < len(text) and text[pos] == "]":
        return items
    while True:
        value, end = _DECODER.raw_decode(text, pos)
        items.append(Document(_line_of(text, pos), value))
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
            continue
        return items


def _ndjson(text: str) -> list[Document]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(Document(number, json.loads(line)))
        except ValueError as exc:
            where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            items.append(Document(number, error=f"malformed JSON: {msg}{where}"))
    return items


def _parses_as_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def read_documents(text: str) -> Documents:
    """One JSON object, a JSON array of them, or NDJSON (one per line), with line numbers.

    A file that is not one JSON document is read as NDJSON when any of its lines is a JSON
    object on its own, so one bad line does not hide the good ones; otherwise (a broken
    pretty-printed document) the JSON error is reported once, at its line.
    """
    start = _skip(text, 0)
    if start == len(text):
        raise UsageError("the file is empty")
    try:
        whole = json.loads(text)
    except ValueError as exc:
        if any(_parses_as_object(line) for line in text.splitlines()):
            return Documents(_ndjson(text), single=False)
        err = exc if isinstance(exc, json.JSONDecodeError) else None
        line = err.lineno if err is not None else 1
        return Documents([Document(line, error=f"malformed JSON: {exc.args[0]}")], single=True)
    if isinstance(whole, list):
        return Documents(_array(text, start), single=False)
    return Documents([Document(_line_of(text, start), whole)], single=True)


def json_argument(text: str, what: str) -> Any:
    """A JSON value given on the command line (a filter, an update); UsageError if malformed."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.args[0]}") from None


def assignment(text: str) -> tuple[str, Any]:
    """`path=value` of `--set`: the value is JSON when it parses (3, true, null, {"a": 1},
    "quoted text"), else the text as it is (so `name=my registry` needs no quotes)."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise UsageError(f"--set expects path=value, got {text!r}")
    try:
        return path, json.loads(raw)
    except ValueError:
        return path, raw


def build_update(
    base: Any,
    sets: Iterable[tuple[str, Any]] = (),
    unsets: Iterable[str] = (),
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
) -> dict[str, Any]:
    """One update document from a file's (`base`, plain or operator form) and the options.

    A plain base becomes `$set` when options are added (the server refuses mixed forms).
    A path given twice is refused here rather than letting one silently win.
    """
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise UsageError("the update document must be a JSON object")
    extra = {
        "$set": dict(sets),
        "$unset": dict.fromkeys(unsets, ""),
        "$addToSet": {"container_registry_tags": {"$each": list(add_tags)}},
        "$pull": {"container_registry_tags": {"$in": list(remove_tags)}},
    }
    wanted = {
        op: spec
        for op, spec in extra.items()
        if spec and not (op in ("$addToSet", "$pull") and not _tag_list(spec))
    }
    if not wanted:
        if not base:
            raise UsageError(
                "nothing to update: give --set, --unset, --add-tag, --remove-tag or -f"
            )
        return base
    operator_form = any(isinstance(k, str) and k.startswith("$") for k in base)
    out: dict[str, Any] = (
        {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()} if operator_form else {}
    )
    if base and not operator_form:
        out["$set"] = dict(base)
    for op, spec in wanted.items():
        target = out.setdefault(op, {})
        if not isinstance(target, dict):
            raise UsageError(f"{op} in the file must be an object")
        for path, value in spec.items():
            if path in target:
                raise UsageError(f"{path!r} is given twice ({op} in the file and an option)")
            target[path] = value
    return out


def _tag_list(spec: dict[str, Any]) -> list[Any]:
    inner = spec["container_registry_tags"]
    return list(inner.get("$each") or inner.get("$in") or [])
