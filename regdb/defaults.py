"""Named defaults, each documented once; settings.py reads overrides from the environment."""

from __future__ import annotations

PREFIX = "regdb:"
"""Prefix of every Redis key regdb writes (REGDB_PREFIX)."""
HOST = "127.0.0.1"
"""Address the API binds to by default: loopback, so a newcomer exposes nothing by accident."""
PORT = 8000
"""The old service's port, kept so existing clients find regdb where they expect it."""
DATA_DIR = "./data"
"""Where the embedded redis-server keeps its append-only file."""
REDIS_TIMEOUT_S = 2.0
"""Socket timeout for Redis calls: a dead store answers 503 within about this long."""
REDIS_MAX_CONNECTIONS = 64
"""Redis connections one API process opens at most; more concurrent requests wait for one."""
MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted; bigger bodies get 413."""
MAX_DOC_BYTES = 64 * 1024
"""Largest encoded size of an entry's free-form objects (metadata, config, storage info)."""
MAX_JSON_DEPTH = 8
"""Deepest nesting allowed inside metadata, config and storage info."""
PAGE_LIMIT = 100
"""Entries per page of POST /container_registries when `limit` is not given."""
PAGE_LIMIT_MAX = 1000
"""Largest `limit` accepted."""
SCAN_BATCH = 500
"""Entries fetched per Redis round trip when a query has to scan."""
HEALTH_INTERVAL_S = 60
"""Seconds between two health probes of a registry (HEALTH_INTERVAL)."""
FAILURE_THRESHOLD = 3
"""Consecutive failed probes before a registry is declared unhealthy."""
PROBE_CONCURRENCY = 500
"""Probes in flight at once inside one worker job."""
PROBE_BATCH_SIZE = 500
"""Registries probed by one RQ job."""
PROBE_CONNECT_TIMEOUT_S = 3.0
"""Connect timeout of a probe."""
PROBE_TOTAL_TIMEOUT_S = 10.0
"""Total time budget of one probe."""
HISTORY_KEEP = 60
"""Recent raw probe results kept per registry (an hour at the default interval); longer
history lives in the rollups."""
ROLLUP_HOURS = 200
"""Hourly rollup buckets kept per registry: every hour of the last 8 days and 8 hours."""
ROLLUP_DAYS = 401
"""Daily rollup buckets kept per registry: every day of the last 400 days and today."""
HISTORY_MAX = 10000
"""Upper bound for HISTORY_KEEP."""
TLS_EXPIRY_WARN_DAYS = 14
"""A certificate expiring within this many days makes a registry degraded."""
REFRESH_WAIT_S = 5.0
"""How long ?refresh=true waits for the probe before answering 202."""
QUEUE_NAME = "regdb-health"
"""Name of the normal RQ queue (the probe cycle, alert deliveries); the priority queue is
this name with `-priority` appended."""
PRIORITY_WORKERS = 1
"""Worker processes per `regdb worker` that serve only the priority queue (refreshes, new or
changed entries), so a long scheduled batch never holds them up."""

SENTINEL_MASTER = "mymaster"
"""Sentinel's name of the primary, when REDIS_SENTINELS comes without REDIS_SENTINEL_MASTER."""

WRITE_WAIT_MS = 1000
"""How long a write waits for REGDB_WRITE_REPLICAS replicas (Redis WAIT) before a 503."""

CONTENTS_CACHE_S = 60
"""Seconds a registry's repository and tag lists are cached (REGDB_CONTENTS_CACHE_S)."""
CONTENTS_TIMEOUT_S = 10.0
"""Time budget of one repository or tag list read, every Link page included."""
CONTENTS_CONCURRENCY = 8
"""Registry reads in flight at once per API process; more wait, then answer 503."""
CAPABILITIES_INTERVAL_S = 3600
"""Seconds between two capability checks of a registry (done by a probe when due)."""
RATELIMIT_WARN_SHARE = 0.1
"""Share of a registry's pull limit left below which it shows degraded (`rate_limited`)."""

AUDIT_KEEP = 100_000
"""Audit records kept (the stream is trimmed approximately: Redis keeps a few more)."""
AUDIT_KEEP_MIN = 100
"""Lower bound for AUDIT_KEEP (fewer would trim records before anyone reads them)."""
AUDIT_KEEP_MAX = 10_000_000
"""Upper bound for AUDIT_KEEP."""

ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""Host header names an API without tokens (REGDB_AUTH=off) answers: loopback, any port."""

TOKEN_KEY_FILE = "token.key"
"""The server key's file in an embedded data directory."""

ADMIN_TOKEN_FILE = "admin.token"
"""Where `regdb serve` writes the first admin token of an empty store."""

QUERY_BUDGET_MS = 2000
"""Matching time one query may spend in all (REGDB_QUERY_BUDGET_MS); past it, a 400."""
QUERY_THREADS = 4
"""Worker threads of one API process that decode, match and sort query candidates, so the
event loop never does; more concurrent costly queries wait for one."""
