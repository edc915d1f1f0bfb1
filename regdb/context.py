"""Process-wide context for RQ jobs: the settings and Redis connection of this worker.

RQ jobs are module-level functions with primitive arguments; they reach settings through this
module, which the worker configures once at start-up (tests configure it in a fixture). Nothing
here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from regdb.connections import sync_redis
from regdb.keys import Keys
from regdb.secret_box import SecretBox
from regdb.settings import Settings


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job needs: settings, a Redis connection, the key builder, the secret keys."""

    settings: Settings
    redis: redis.Redis
    keys: Keys
    box: SecretBox


_current: JobContext | None = None


def configure(settings: Settings, conn: redis.Redis | None = None) -> JobContext:
    """Set the context of this process (the worker calls it before working)."""
    global _current
    _current = JobContext(
        settings,
        conn if conn is not None else sync_redis(settings),
        Keys(settings.prefix),
        SecretBox(settings.secret_keys),
    )
    return _current


def current() -> JobContext:
    """The configured context; a RuntimeError if the process forgot to configure it."""
    if _current is None:
        raise RuntimeError("regdb job context not configured (call regdb.context.configure)")
    return _current
