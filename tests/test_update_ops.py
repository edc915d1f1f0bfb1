"""Pure tests of the update operators (no Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from regdb.errors import InvalidInput
from regdb.update import apply_update, json_equal, normalise_update

BASE: dict[str, Any] = {
    "container_registry_id": "r1",
    "container_registry_name": "n",
    "container_registry_tags": ["ai", "gpu"],
    "container_registry_metadata": {"owner": "a", "nested": {"x": 1}, "list": [1, 2]},
}


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ({"container_registry_name": "m"}, ("container_registry_name",), "m"),
        ({"$set": {"container_registry_name": "m"}}, ("container_registry_name",), "m"),
        (
            {"$set": {"container_registry_metadata.owner": "b"}},
            ("container_registry_metadata", "owner"),
            "b",
        ),
        (
            {"$set": {"container_registry_metadata.new.deep": True}},
            ("container_registry_metadata", "new", "deep"),
            True,
        ),
        (
            {"$set": {"container_registry_metadata.list.1": 5}},
            ("container_registry_metadata", "list"),
            [1, 5],
        ),
        (
            {"$unset": {"container_registry_metadata.owner": ""}},
            ("container_registry_metadata",),
            {"nested": {"x": 1}, "list": [1, 2]},
        ),
        (
            {"$unset": {"container_registry_metadata.missing.deeper": ""}},
            ("container_registry_metadata", "owner"),
            "a",
        ),
        (
            {"$addToSet": {"container_registry_tags": "ai"}},
            ("container_registry_tags",),
            ["ai", "gpu"],
        ),
        (
            {"$addToSet": {"container_registry_tags": {"$each": ["x", "gpu", "y"]}}},
            ("container_registry_tags",),
            ["ai", "gpu", "x", "y"],
        ),
        ({"$pull": {"container_registry_tags": "ai"}}, ("container_registry_tags",), ["gpu"]),
        (
            {"$pull": {"container_registry_tags": {"$in": ["ai", "gpu", "zz"]}}},
            ("container_registry_tags",),
            [],
        ),
        (
            {"$pull": {"container_registry_metadata.list": True}},
            ("container_registry_metadata", "list"),
            [1, 2],
        ),
        ({"$set": {"container_registry_id": "r1"}}, ("container_registry_id",), "r1"),
        (
            {"$addToSet": {"container_registry_metadata.newlist": 3}},
            ("container_registry_metadata", "newlist"),
            [3],
        ),
        ({}, ("container_registry_name",), "n"),
    ],
)
def test_apply(body: Any, path: tuple[str, ...], expected: Any) -> None:
    out = apply_update(BASE, normalise_update(body))
    node: Any = out
    for p in path:
        node = node[p]
    assert node == expected
    assert BASE["container_registry_tags"] == ["ai", "gpu"], "input must not be mutated"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"$set": {"a": 1}, "b": 2}, "mixes"),
        ({"$rename": {"a": "b"}}, "unsupported update operator '$rename'"),
        ({"$set": []}, "needs an object"),
        ({"$set": {"container_registry_id": "other"}}, "immutable"),
        ({"$unset": {"container_registry_id": ""}}, "cannot be removed"),
        ({"$set": {"created_at": "x"}}, "read-only"),
        ({"$set": {"a..b": 1}}, "invalid update path"),
        ({"$set": {"$x": 1}}, "invalid update path"),
        ({"$set": {"container_registry_name.x": 1}}, "not an object"),
        ({"$addToSet": {"container_registry_name": "x"}}, "not an array"),
        ({"$addToSet": {"container_registry_tags": {"$each": "x"}}}, "$each needs an array"),
        ({"$pull": {"container_registry_tags": {"$gt": 1}}}, "supports a value"),
        (
            {
                "$set": {"container_registry_metadata": {}},
                "$unset": {"container_registry_metadata.owner": ""},
            },
            "conflict",
        ),
    ],
)
def test_rejects(body: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        apply_update(BASE, normalise_update(body))
    assert message in err.value.message


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        ("a", "a", True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, False),
        ([1, {"a": True}], [1, {"a": True}], True),
        (None, None, True),
        (None, 0, False),
    ],
)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
