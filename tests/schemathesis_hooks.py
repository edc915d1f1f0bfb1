"""Schemathesis hooks for tests/test_api_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The fuzz run must never reach past loopback. Hook URLs are whatever schemathesis generates
(the spec's example is a public name), and schemathesis reuses ids from earlier answers, so
`POST /alert_hooks/{id}/test?wait=true` would POST to them from the API process. Those cases
are dropped; queued test deliveries (`wait=false`) stay in, as no worker runs to send them.

Likewise the registry reads (`/container_registry/{id}/repositories...`) connect to the URL of
the entry they name, which a fuzzed entry may put anywhere: only the cases that the API refuses
before any I/O (a 400 for a bad id, `n`, `last`, name or query parameter) are kept. The reads
themselves are tested against real registries in tests/test_registry_contents.py.

The run's own admin token (REGDB_FUZZ_KEEP_TOKEN, its id) is never revoked by a generated
`DELETE /tokens/{id}`: every later request would be a 401 and test nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from regdb.contents import PAGE_MAX
from regdb.model import is_valid_id
from regdb.probe.oci import is_repository_name, is_tag

REPOSITORIES = "/container_registry/{id}/repositories"
TAGS = "/container_registry/{id}/repositories/{name}/tags"


def _refused_before_io(path: str, params: dict[str, Any], query: dict[str, Any]) -> bool:
    """The API answers this registry read with a 400 without reading the entry."""
    if not is_valid_id(str(params.get("id", ""))) or set(query) - {"n", "last"}:
        return True
    if path == TAGS and not is_repository_name(str(params.get("name", ""))):
        return True
    n = query.get("n")
    if n is not None:
        try:
            if not 1 <= int(str(n)) <= PAGE_MAX:
                return True
        except ValueError:
            return True
    last = query.get("last")
    valid = is_tag if path == TAGS else is_repository_name
    return last is not None and not valid(str(last))


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Keep every case except an inline test delivery."""
    op = case.operation
    if op.method.upper() == "POST" and op.path == "/alert_hooks/{id}/test":
        return (case.query or {}).get("wait") not in (True, "true")
    if op.path in (REPOSITORIES, TAGS):
        return _refused_before_io(op.path, case.path_parameters or {}, case.query or {})
    if op.method.upper() == "DELETE" and op.path == "/tokens/{id}":
        return (case.path_parameters or {}).get("id") != os.environ.get("REGDB_FUZZ_KEEP_TOKEN")
    return True
