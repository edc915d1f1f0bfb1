"""Write-only credentials: which config values are secret, and how they are hidden.

Secrets are stored as given (the prober needs them) and replaced by ``"***"`` in everything regdb
returns. Queries run against the redacted document, so a filter can never be used as an oracle
for a secret value.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
CONFIG_FIELD = "container_registry_config"
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|access[_-]?key|private[_-]?key|credential", re.IGNORECASE
)


def is_secret_key(key: str) -> bool:
    """True for a config key whose value is a credential (`password`, `api_token`, ...)."""
    return key == "auth" or _SECRET_KEY.search(key) is not None


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return None if value is None else MASK


def redact_config(config: Any) -> Any:
    """Copy of a config object with every secret value masked (structure kept)."""
    if isinstance(config, dict):
        return {k: (_mask(v) if is_secret_key(k) else redact_config(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact_config(v) for v in config]
    return config


def redact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as clients may see it (a shallow copy when it holds a config)."""
    config = entry.get(CONFIG_FIELD)
    if not config:
        return entry
    out = dict(entry)
    out[CONFIG_FIELD] = redact_config(config)
    return out


def keep_masked_secrets(new: Any, old: Any, *, in_secret: bool = False) -> Any:
    """Where a client sent back ``"***"`` for a secret, keep the stored value.

    A client that GETs an entry and PUTs it back must not overwrite its password with the mask.
    """
    if isinstance(new, dict):
        old_d = old if isinstance(old, dict) else {}
        return {
            k: keep_masked_secrets(v, old_d.get(k), in_secret=in_secret or is_secret_key(k))
            for k, v in new.items()
        }
    if isinstance(new, list):
        old_l = old if isinstance(old, list) else []
        return [
            keep_masked_secrets(v, old_l[i] if i < len(old_l) else None, in_secret=in_secret)
            for i, v in enumerate(new)
        ]
    if in_secret and new == MASK and old is not None and not isinstance(old, dict | list):
        return old
    return new
