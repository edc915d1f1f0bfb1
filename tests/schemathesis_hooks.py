"""Schemathesis hooks for tests/test_api_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The fuzz run must never reach past loopback. Hook URLs are whatever schemathesis generates
(the spec's example is a public name), and schemathesis reuses ids from earlier answers, so
`POST /alert_hooks/{id}/test?wait=true` would POST to them from the API process. Those cases
are dropped; queued test deliveries (`wait=false`) stay in, as no worker runs to send them.
The run's own admin token (REGDB_FUZZ_KEEP_TOKEN, its id) is never revoked by a generated
`DELETE /tokens/{id}`: every later request would be a 401 and test nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Keep every case except an inline test delivery."""
    op = case.operation
    if op.method.upper() == "POST" and op.path == "/alert_hooks/{id}/test":
        return (case.query or {}).get("wait") not in (True, "true")
    if op.method.upper() == "DELETE" and op.path == "/tokens/{id}":
        return (case.path_parameters or {}).get("id") != os.environ.get("REGDB_FUZZ_KEEP_TOKEN")
    return True
