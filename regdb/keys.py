"""Every Redis key regdb uses, built in one place under a configurable prefix.

Layout (``P`` is the prefix, ``regdb:`` by default):

- ``P e:<id>``              hash: one entry's revision, document number and, when it has
                            secrets, its full config (see codec.py)
- ``P docs``                hash: document number -> the entry's public JSON (a query page is
                            one HMGET of it)
- ``P ids``                 sorted set: every entry id, scored by creation time (µs since epoch,
                            unique: a create never stamps a time at or before the latest one)
- ``P docseq``              string: the last document number handed out
- ``P docids``              hash: document number -> entry id
- ``P ix:<path>=<value>``   set: document numbers of the entries whose ``path`` equals the
                            encoded scalar ``value`` (small integers: Redis keeps them as intsets);
                            ``ix:container_registry_owner=s:<owner>`` is one owner's entries
- ``P h:<id>``              string: latest health result (JSON)
- ``P hh:<id>``             list: recent raw health results, newest first (compact text,
                            regdb/monitor/recent.py; JSON objects from earlier versions)
- ``P hr1h:<id>``           list: hourly rollups of the registry's probes, newest first
- ``P hr1d:<id>``           list: daily rollups, newest first (both: regdb/monitor/rollups.py)
- ``P due``                 sorted set: id -> time the next probe is due (s since epoch)
- ``P queued``              sorted set: ids with a probe job queued, scored by enqueue time
- ``P lock:scheduler``      string: the active scheduler's token, with an expiry
- ``P hook:<id>``           string: one alert hook (JSON)
- ``P hooks``               set: every alert hook id
- ``P hookdeliv:<id>``      list: recent delivery attempts of a hook, newest first
- ``P bearer:<hmac>``       string: a cached registry Bearer token, AES-GCM sealed, with its
                            lifetime
- ``P bearerroute:<hmac>``  string: which Bearer challenge a registry gave, sealed likewise
                            (names are HMACs keyed by the credentials: regdb/probe/tokens.py)
- ``P tok:<id>``            hash: one regdb API token (owner, scopes, dates, digest; never the
                            token itself: regdb/tokens.py)
- ``P tokd:<digest>``       string: the id of the API token with that HMAC-SHA256 digest
- ``P toks``                set: every API token id
- ``P toko:<owner>``        set: one owner's API token ids
- ``P toku:<id>``           string with a TTL: the token's last use was recorded lately
- ``P audit``               stream: one record per write (who, what, which fields; never a
                            secret value), the latest AUDIT_KEEP kept (regdb/audit.py)
- ``P m:probes``            hash: probes recorded by the workers, outcome -> count (metrics)
- ``P m:probefail``         hash: failed or degraded probes by failure kind -> count (metrics)
- ``P m:deliveries``        hash: alert delivery attempts, result -> count (metrics)
- ``P m:uptime``            hash: id -> uptime ratios for /metrics, refreshed in sweeps
- ``P lock:uptime``         string: held by the API process sweeping uptime, with an expiry
- ``P secrets:canary``      string: a known text sealed under the key secrets are sealed with
                            (regdb/keyring.py: a process with the wrong keys refuses to start)
- ``P rc:<id>:<sha256>``    string with a TTL (REGDB_CONTENTS_CACHE_S): one page of a registry's
                            repository or tag list as the API answered it; the digest covers the
                            entry's revision, the list, `n` and `last` (regdb/contents.py)
- ``P rl:<budget>:<who>``   hash: one caller's token bucket for one rate budget (tokens, at),
                            expiring once full; who is ``t:<token id>`` or ``a:<address>``
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from regdb.model import OWNER_FIELD
from regdb.monitor.model import HealthStatus

# Index paths are escaped so that "<path>=<value>" can never be read two ways.
_ESCAPES = str.maketrans({"%": "%25", "=": "%3D"})


@functools.lru_cache(maxsize=4096)
def _escaped(path: str) -> str:
    # Paths repeat (a create builds a dozen index keys): escape each once.
    return path.translate(_ESCAPES)


def _glob_escaped(text: str) -> str:
    """`text` matched literally by a Redis glob (the prefix may hold glob characters)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


HEALTH_STATUS_PATH = "health.status"

ENTRY_REV_FIELD = "_rev"
"""Hash field holding the entry's revision token (its ETag); never part of the entry itself."""
ENTRY_DOCNUM_FIELD = "_n"
"""Hash field holding the entry's document number, its member in the index sets."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one prefix."""

    prefix: str = "regdb:"

    def entry(self, entry_id: str) -> str:
        return f"{self.prefix}e:{entry_id}"

    @property
    def ids(self) -> str:
        return f"{self.prefix}ids"

    @property
    def docseq(self) -> str:
        return f"{self.prefix}docseq"

    @property
    def docids(self) -> str:
        return f"{self.prefix}docids"

    @property
    def docs(self) -> str:
        return f"{self.prefix}docs"

    def index(self, path: str, encoded: str) -> str:
        return f"{self.prefix}ix:{_escaped(path)}={encoded}"

    def owner_index(self, owner: str) -> str:
        """Index set behind `{"container_registry_owner": owner}`: one owner's entries."""
        return self.index(OWNER_FIELD, f"s:{owner}")

    def health_status_index(self, status: HealthStatus | str) -> str:
        """Index set behind `{"health.status": status}`."""
        return self.index(HEALTH_STATUS_PATH, f"s:{status}")

    @property
    def health_status_indexes(self) -> list[str]:
        """One index set per HealthStatus, in its order; an entry is in exactly one of them."""
        return [self.health_status_index(s) for s in HealthStatus]

    def index_values_pattern(self, path: str) -> str:
        """SCAN pattern matching every index set of `path`, one per value (for facets: the
        value is the rest of the key after :meth:`index` of an empty value)."""
        return _glob_escaped(self.index(path, "")) + "*"

    @property
    def index_pattern(self) -> str:
        return f"{self.prefix}ix:*"

    @property
    def entry_pattern(self) -> str:
        return f"{self.prefix}e:*"

    def entry_id_from_key(self, key: str) -> str:
        return key[len(self.prefix) + 2 :]

    def health(self, entry_id: str) -> str:
        return f"{self.prefix}h:{entry_id}"

    def health_history(self, entry_id: str) -> str:
        return f"{self.prefix}hh:{entry_id}"

    def health_hourly(self, entry_id: str) -> str:
        """List: the registry's hourly rollup buckets, newest first."""
        return f"{self.prefix}hr1h:{entry_id}"

    def health_daily(self, entry_id: str) -> str:
        """List: the registry's daily rollup buckets, newest first."""
        return f"{self.prefix}hr1d:{entry_id}"

    def health_keys(self, entry_id: str) -> list[str]:
        """Every key of a registry's health data: record, raw results, hourly, daily (the
        order the delete and record scripts take them in)."""
        return [
            self.health(entry_id),
            self.health_history(entry_id),
            self.health_hourly(entry_id),
            self.health_daily(entry_id),
        ]

    @property
    def health_key_patterns(self) -> tuple[str, ...]:
        """SCAN patterns of the per-registry health keys (fsck looks for strays)."""
        return tuple(f"{self.prefix}{kind}:*" for kind in ("h", "hh", "hr1h", "hr1d"))

    def entry_id_from_health_key(self, key: str) -> str:
        """The registry id of a per-registry health key."""
        return key[len(self.prefix) :].split(":", 1)[1]

    @property
    def due(self) -> str:
        return f"{self.prefix}due"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def scheduler_lock(self) -> str:
        return f"{self.prefix}lock:scheduler"

    def hook(self, hook_id: str) -> str:
        return f"{self.prefix}hook:{hook_id}"

    @property
    def hooks(self) -> str:
        return f"{self.prefix}hooks"

    def hook_deliveries(self, hook_id: str) -> str:
        return f"{self.prefix}hookdeliv:{hook_id}"

    def token(self, token_id: str) -> str:
        """Hash: one API token's record (id, owner, scopes, dates, digest); never the token."""
        return f"{self.prefix}tok:{token_id}"

    def token_digest(self, digest: str) -> str:
        """String: the id of the token whose HMAC-SHA256 digest is `digest` (the lookup)."""
        return f"{self.prefix}tokd:{digest}"

    @property
    def tokens(self) -> str:
        """Set: every token id."""
        return f"{self.prefix}toks"

    def owner_tokens(self, owner: str) -> str:
        """Set: the ids of one owner's tokens."""
        return f"{self.prefix}toko:{owner}"

    def token_used(self, token_id: str) -> str:
        """String with a TTL: present while `last_used_at` is fresh (at most one write a minute)."""
        return f"{self.prefix}toku:{token_id}"

    @property
    def audit(self) -> str:
        """Stream: the audit log, one record per write (regdb/audit.py)."""
        return f"{self.prefix}audit"

    def bearer_token(self, digest: str) -> str:
        """A cached Bearer token; `digest` is an HMAC, never a credential."""
        return f"{self.prefix}bearer:{digest}"

    def bearer_route(self, digest: str) -> str:
        """The Bearer challenge a registry answered with; `digest` is an HMAC."""
        return f"{self.prefix}bearerroute:{digest}"

    @property
    def probe_counts(self) -> str:
        """Hash: probes recorded by the workers since the counters began, outcome -> count."""
        return f"{self.prefix}m:probes"

    @property
    def probe_failure_counts(self) -> str:
        """Hash: probes recorded with a failure kind, kind -> count (regdb/probe/classify.py)."""
        return f"{self.prefix}m:probefail"

    @property
    def delivery_counts(self) -> str:
        """Hash: alert delivery attempts since the counters began, result -> count."""
        return f"{self.prefix}m:deliveries"

    @property
    def uptime_ratios(self) -> str:
        """Hash: id -> the registry's uptime ratios as /metrics shows them (see
        regdb/metrics/uptime.py), plus the field ``_at``: when the last sweep finished."""
        return f"{self.prefix}m:uptime"

    @property
    def uptime_lock(self) -> str:
        """String with an expiry: held by the one API process sweeping uptime ratios."""
        return f"{self.prefix}lock:uptime"

    @property
    def secrets_canary(self) -> str:
        """String: a known text sealed with the secret keys (regdb/keyring.py)."""
        return f"{self.prefix}secrets:canary"

    def contents(self, entry_id: str, digest: str) -> str:
        """String with a TTL: one cached page of a registry's repositories or tags."""
        return f"{self.prefix}rc:{entry_id}:{digest}"

    def rate_bucket(self, budget: str, who: str) -> str:
        """Hash with an expiry: the token bucket of caller `who` for `budget` (regdb/limiter.py)."""
        return f"{self.prefix}rl:{budget}:{who}"
