"""regdb's query engine: a documented subset of MongoDB's filter language over JSON entries."""

from __future__ import annotations

from regdb.query.match import compile_filter, matches
from regdb.query.plan import IndexExpr, Inter, Term, Union, evaluate, plan
from regdb.query.sort import parse_fields, parse_sort, project, sort_docs, sort_key
from regdb.query.terms import INDEXED_PATHS, encode_scalar, entry_terms, is_indexed_path
from regdb.query.validate import (
    DEFAULT_LIMITS,
    QueryLimits,
    forbid_paths,
    validate_filter,
    validate_path,
)

__all__ = [
    "DEFAULT_LIMITS",
    "INDEXED_PATHS",
    "IndexExpr",
    "Inter",
    "QueryLimits",
    "Term",
    "Union",
    "compile_filter",
    "encode_scalar",
    "entry_terms",
    "evaluate",
    "forbid_paths",
    "is_indexed_path",
    "matches",
    "parse_fields",
    "parse_sort",
    "plan",
    "project",
    "sort_docs",
    "sort_key",
    "validate_filter",
    "validate_path",
]
