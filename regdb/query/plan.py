"""Index planning: the part of a filter the Redis index sets can answer.

``plan`` returns an ``IndexExpr`` whose candidate set (evaluated over ``entry_terms``) always
contains every matching entry, or ``None`` when only a full scan will do. The store still runs
the matcher over the candidates, so a plan may be loose but never too tight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regdb.query.match import is_operator_object
from regdb.query.terms import encode_scalar, is_indexed_path


@dataclass(frozen=True)
class Term:
    """Entries indexed under ``(path, encoded)``."""

    path: str
    encoded: str


@dataclass(frozen=True)
class Inter:
    """Entries in every child."""

    children: tuple[IndexExpr, ...]


@dataclass(frozen=True)
class Union:
    """Entries in any child."""

    children: tuple[IndexExpr, ...]


IndexExpr = Term | Inter | Union


def plan(filt: Mapping[str, Any]) -> IndexExpr | None:
    """Index expression for a validated filter, or ``None`` for a full scan."""
    return _inter(_conjuncts(filt))


def evaluate(expr: IndexExpr, index: Mapping[tuple[str, str], set[str]]) -> set[str]:
    """Ids selected by ``expr`` given ``index`` (term -> ids); mirrors what the store does."""
    if isinstance(expr, Term):
        return set(index.get((expr.path, expr.encoded), set()))
    sets = [evaluate(child, index) for child in expr.children]
    if isinstance(expr, Inter):
        return set.intersection(*sets) if sets else set()
    return set().union(*sets)


def _conjuncts(filt: Mapping[str, Any]) -> list[IndexExpr]:
    found: list[IndexExpr] = []
    for key, value in filt.items():
        if key == "$and":
            for branch in value:
                found.extend(_conjuncts(branch))
        elif key == "$or":
            branches = [plan(branch) for branch in value]
            if branches and all(branch is not None for branch in branches):
                found.append(_union([b for b in branches if b is not None]))
        elif not key.startswith("$") and is_indexed_path(key):
            found.extend(_field(key, value))
    return found


def _field(path: str, cond: Any) -> list[IndexExpr]:
    if not is_operator_object(cond):
        term = encode_scalar(cond)
        return [Term(path, term)] if term is not None else []
    found: list[IndexExpr] = []
    for name, arg in cond.items():
        if name == "$eq":
            term = encode_scalar(arg)
            if term is not None:
                found.append(Term(path, term))
        elif name in ("$in", "$all") and isinstance(arg, list) and arg:
            terms = [encode_scalar(value) for value in arg]
            if all(term is not None for term in terms):
                exprs: list[IndexExpr] = [Term(path, t) for t in dict.fromkeys(terms) if t]
                found.append(_union(exprs) if name == "$in" else _inter(exprs) or exprs[0])
    return found


def _inter(exprs: list[IndexExpr]) -> IndexExpr | None:
    flat: list[IndexExpr] = []
    for expr in exprs:
        for part in expr.children if isinstance(expr, Inter) else (expr,):
            if part not in flat:
                flat.append(part)
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else Inter(tuple(flat))


def _union(exprs: list[IndexExpr]) -> IndexExpr:
    flat: list[IndexExpr] = []
    for expr in exprs:
        for part in expr.children if isinstance(expr, Union) else (expr,):
            if part not in flat:
                flat.append(part)
    return flat[0] if len(flat) == 1 else Union(tuple(flat))
