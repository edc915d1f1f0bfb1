"""Write-only credentials: which config values are secret, and how they are hidden.

Secrets are stored as given (the prober needs them) and replaced by ``"***"`` in everything regdb
returns. Queries run against the redacted document, so a filter can never be used as an oracle
for a secret value.

The rule, applied to every key of ``container_registry_config`` at any depth (lists included):

1. The key is split into words: at every separator (anything not a letter or digit: ``_``, ``-``,
   a space...) and at camelCase boundaries (``apiKey`` -> ``api key``, ``APIKey`` -> ``api key``),
   then lowercased. Its *compact* form is the words joined (``x-api-key`` -> ``xapikey``).
2. The key names a secret when one of its words is in :data:`SECRET_WORDS` (``key``, ``pwd``,
   ``auth``, ``bearer``...: short words that are secrets only on their own, so ``monkey``,
   ``keyboard_layout``, ``author`` and ``bypass`` stay readable), or when its compact form
   contains one of :data:`SECRET_STEMS` (``password``, ``secret``, ``token``, ``apikey``,
   ``connectionstring``...: long enough to mean a secret wherever they appear, so
   ``dbPassword``, ``clientsecret`` and ``x-api-key`` are masked).
3. Every value under such a key is masked, at any depth and in lists: strings and numbers become
   ``"***"``; booleans and null are kept (``auth_required: true`` is a setting, not a secret,
   and a mask cannot hide one bit anyway).

The rule errs on the side of masking (``token_ttl``, ``public_key``, ``sort_key`` are masked):
a hidden setting costs a reader little, a shown credential costs its owner a lot.
Metadata and storage info are public discovery data (indexed for queries) and are not redacted:
credentials belong in the config.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

MASK = "***"
CONFIG_FIELD = "container_registry_config"

SECRET_WORDS: Final = frozenset(
    {
        "auth",
        "bearer",
        "cookie",
        "cred",
        "creds",
        "dsn",
        "key",
        "keys",
        "pass",
        "pat",
        "pin",
        "pwd",
        "pw",
        "salt",
    }
)
"""Words that name a secret only when they stand alone in a key (``db_pass``, not ``bypass``)."""

SECRET_STEMS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "authorization",
    "connectionstring",
    "connstring",
    "connstr",
    "dockerconfigjson",
    "dockercfg",
)
"""Letter sequences that name a secret wherever they appear in a key's compact form."""

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def key_words(key: str) -> tuple[str, ...]:
    """The lowercase words of a key: ``X-Api_Key`` and ``xApiKey`` -> ``("x", "api", "key")``."""
    return tuple(w.lower() for w in _WORD.findall(key))


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for a config key whose value is a credential (see the module docstring)."""
    words = key_words(key)
    if any(w in SECRET_WORDS for w in words):
        return True
    compact = "".join(words)
    return any(stem in compact for stem in SECRET_STEMS)


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return MASK


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
