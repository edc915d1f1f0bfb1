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

**Credentials follow their registry, not its URL.** When an update changes the origin (scheme,
host or port) of ``container_registry_public_url``, every stored secret (everything shown as
``"***"``) is dropped unless the same update supplies it again; otherwise anyone could point a
registry at their own server and collect its stored password at the next probe. The rule is
:func:`regdb.update.credentials_follow_origin`; :func:`origin_change_notice` tells the client.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from yarl import URL

MASK = "***"
CONFIG_FIELD = "container_registry_config"
URL_FIELD = "container_registry_public_url"

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


def url_origin(url: Any) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL, the default port made explicit; None when unusable."""
    if not isinstance(url, str):
        return None
    try:
        u = URL(url)
    except (TypeError, ValueError):
        return None
    if not u.scheme or u.raw_host is None:
        return None
    return u.scheme.lower(), u.raw_host.lower(), u.port


def same_origin(old_url: Any, new_url: Any) -> bool:
    """True when both URLs have one scheme, host and port (an unusable URL matches nothing)."""
    old = url_origin(old_url)
    return old is not None and old == url_origin(new_url)


def secret_paths(config: Any, prefix: str = CONFIG_FIELD) -> list[str]:
    """Dotted paths (list items by index) of every value :func:`redact_config` masks."""
    out: list[str] = []

    def walk(value: Any, path: str, secret: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}", secret or is_secret_key(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}.{i}", secret)
        elif secret and value is not None and not isinstance(value, bool):
            out.append(path)

    walk(config, prefix, False)
    return out


def strip_masked(config: Any) -> Any:
    """`config` without the secret values that are still ``"***"`` (not supplied by a client).

    Objects and lists left empty by the removal are removed too, so ``{"auth": {"username":
    "***", "password": "***"}}`` becomes ``{}`` rather than an ``auth`` the model refuses.
    """

    def walk(value: Any, secret: bool) -> tuple[Any, bool]:
        """(cleaned value, whether it is to be dropped)."""
        if isinstance(value, dict):
            kept: dict[str, Any] = {}
            for k, v in value.items():
                cleaned, drop = walk(v, secret or is_secret_key(k))
                if not drop:
                    kept[k] = cleaned
            return kept, bool(value) and not kept
        if isinstance(value, list):
            items = [walk(v, secret) for v in value]
            kept_items = [c for c, drop in items if not drop]
            return kept_items, bool(value) and not kept_items
        return value, secret and value == MASK

    cleaned, _ = walk(config, False)
    return cleaned


def dropped_credentials(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths of the stored secrets an update dropped because the URL's origin changed."""
    if same_origin(before.get(URL_FIELD), after.get(URL_FIELD)):
        return []
    kept = set(secret_paths(after.get(CONFIG_FIELD)))
    return [p for p in secret_paths(before.get(CONFIG_FIELD)) if p not in kept]


def origin_change_notice(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What an update's answer adds when credentials were dropped: ``{}`` when none were."""
    dropped = dropped_credentials(before, after)
    if not dropped:
        return {}
    return {
        "credentials_dropped": dropped,
        "warnings": [
            "container_registry_public_url moved to another origin (scheme, host or port): "
            f"the stored credentials were dropped ({', '.join(dropped)}); send them again in "
            "the same update to keep them"
        ],
    }
