"""The export/import line format and the mongoexport mapping: pure, no Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regdb import jsonutil
from regdb.secrets import MASK
from regdb.transfer.records import (
    MONGO_ID_KEY,
    BadLine,
    Record,
    Refused,
    drop_masks,
    entry_record,
    from_extended_json,
    hook_record,
    read_records,
)

MONGO_FILE = Path(__file__).parent / "data" / "mongoexport.ndjson"


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ({"$oid": "65a1b2c3d4e5f60718293a4b"}, "65a1b2c3d4e5f60718293a4b"),
        ({"$date": "2024-01-12T10:00:00Z"}, "2024-01-12T10:00:00.000000Z"),
        ({"$date": "2024-01-12T12:00:00+02:00"}, "2024-01-12T10:00:00.000000Z"),
        ({"$date": "2024-01-12T10:00:00"}, "2024-01-12T10:00:00.000000Z"),
        ({"$date": 1700000000000}, "2023-11-14T22:13:20.000000Z"),
        ({"$date": {"$numberLong": "1700000000123"}}, "2023-11-14T22:13:20.123000Z"),
        ({"$numberInt": "42"}, 42),
        ({"$numberLong": "-1"}, -1),
        ({"$numberDouble": "1.5"}, 1.5),
        ({"$numberDecimal": "2.25"}, 2.25),
        ({"a": [{"$numberInt": "1"}, {"b": {"$oid": "x"}}]}, {"a": [1, {"b": "x"}]}),
        ({"plain": "value", "n": 3}, {"plain": "value", "n": 3}),
        ([], []),
    ],
)
def test_extended_json_to_plain(raw: Any, plain: Any) -> None:
    assert from_extended_json(raw) == plain


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"$binary": {"base64": "AA==", "subType": "00"}}, "$binary"),
        ({"x": {"$regularExpression": {"pattern": "a", "options": ""}}}, "$regularExpression"),
        ({"$numberDouble": "NaN"}, "cannot be stored"),
        ({"$numberDouble": "-Infinity"}, "cannot be stored"),
        ({"$numberInt": "forty"}, "not a number"),
        ({"$date": "yesterday"}, "not an ISO 8601 date"),
        ({"$date": True}, "text or milliseconds"),
        ({"$date": {"$numberLong": "soon"}}, "not an integer"),
        ({"$oid": 5}, "$oid must be text"),
        ({"$timestamp": {"t": 1, "i": 1}}, "$timestamp"),
    ],
)
def test_extended_json_refusals_name_the_problem(raw: Any, why: str) -> None:
    with pytest.raises(Refused, match=why.replace("$", r"\$")):
        from_extended_json(raw)


def _read(text: str) -> list[Record | BadLine]:
    return list(read_records(text.splitlines()))


def test_mongoexport_lines_map_to_entries_and_bad_lines_are_numbered() -> None:
    out = list(read_records(MONGO_FILE.read_text().splitlines()))
    good = {r.number: r for r in out if isinstance(r, Record)}
    bad = {b.number: b.reason for b in out if isinstance(b, BadLine)}
    # line 3 is blank; line 4 is refused later by validation (a bad URL is an entry problem)
    assert sorted(good) == [1, 2, 4, 7]
    assert sorted(bad) == [5, 6]
    assert "$binary" in bad[5] and "not JSON" in bad[6]
    first = good[1].doc
    assert first["container_registry_id"] == "b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509"
    assert "_id" not in first and MONGO_ID_KEY not in first["container_registry_metadata"]
    assert first["container_registry_config"]["max_layer_size_mb"] == 500
    assert first["container_registry_storage_info"]["storage_size"] == -1
    second = good[2]
    assert second.doc["container_registry_id"] == "65a1b2c3d4e5f60718293a4c"
    assert second.doc["container_registry_metadata"] == {MONGO_ID_KEY: "65a1b2c3d4e5f60718293a4c"}
    assert second.stamps == {"created_at": "2024-01-12T10:00:00.000000Z"}
    assert "legacy_flag" not in second.doc
    assert second.notes == ("unknown fields dropped: legacy_flag",)
    assert good[7].stamps == {
        "created_at": "2023-07-22T04:26:40.000000Z",
        "updated_at": "2023-11-14T22:13:20.000000Z",
    }


def test_json_array_form_numbers_items() -> None:
    docs = [
        {"_id": {"$oid": "65a1b2c3d4e5f60718293a50"}, "container_registry_name": "a"},
        7,
        {"neither": True},
    ]
    text = json.dumps(docs, indent=2)  # mongoexport --jsonArray --pretty spreads it over lines
    out = _read(text)
    assert isinstance(out[0], Record) and out[0].number == 1
    assert out[1] == BadLine(2, "each line must be a JSON object")
    assert isinstance(out[2], BadLine) and out[2].number == 3 and "neither" in out[2].reason


def test_broken_array_is_one_bad_line() -> None:
    out = _read('\n\n[{"container_registry_name": "a"},\n')
    assert len(out) == 1 and isinstance(out[0], BadLine) and out[0].number == 3


def test_export_lines_round_trip_through_the_reader() -> None:
    entry = {
        "container_registry_id": "r1",
        "container_registry_name": "one",
        "container_registry_config": {"auth": {"username": "u", "password": "p"}, "x": 1},
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-02T00:00:00.000000Z",
    }
    hook = {"id": "h1", "url": "http://127.0.0.1:9/x", "secret": "s3cret"}
    lines = [
        jsonutil.dumps(
            {"kind": "header", "format": "regdb-export", "version": 1, "secrets": "masked"}
        ).decode(),
        jsonutil.dumps(entry_record(entry, sealed=None)).decode(),
        jsonutil.dumps(hook_record(hook, sealed=None)).decode(),
    ]
    assert (
        "p" not in jsonutil.loads(lines[1])["entry"]["container_registry_config"]["auth"].values()
    )
    assert "s3cret" not in lines[2]
    records = list(read_records(lines))
    assert [type(r) for r in records] == [Record, Record]
    entry_rec, hook_rec = records
    assert isinstance(entry_rec, Record) and isinstance(hook_rec, Record)
    assert entry_rec.kind == "entry" and entry_rec.stamps["updated_at"] == entry["updated_at"]
    assert "created_at" not in entry_rec.doc
    assert hook_rec.kind == "hook" and hook_rec.doc["secret"] == MASK


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ({"kind": "header", "format": "other", "version": 1}, "header"),
        ({"kind": "entry"}, "`entry` object"),
        ({"kind": "hook", "hook": {"url": "x"}}, "with an id"),
        ({"kind": "table"}, "unknown record kind"),
    ],
)
def test_bad_export_records(line: dict[str, Any], why: str) -> None:
    out = _read(jsonutil.dumps(line).decode())
    assert len(out) == 1 and isinstance(out[0], BadLine) and why in out[0].reason


def test_drop_masks_removes_only_masks() -> None:
    value = {"auth": {"username": "u", "password": MASK}, "list": [MASK, "keep"], "n": 1}
    assert drop_masks(value) == {"auth": {"username": "u"}, "list": ["keep"], "n": 1}
