"""Where the server key API tokens are digested with comes from (see README: Tokens and scopes).

Every API process and `regdb token` must use the same key, or tokens made by one are unknown to
the others. In order: REGDB_TOKEN_KEY (hex or base64), REGDB_TOKEN_KEY_FILE (its bytes are the
key), and, for an embedded store only, ``<data dir>/token.key``, created (0600) on first use.
With REDIS_URL and neither variable, regdb refuses to start rather than invent a key that the
other processes would not share.
"""

from __future__ import annotations

from regdb import defaults
from regdb.settings import Settings, SettingsError
from regdb.tokens import load_server_key


def server_key(settings: Settings, *, embedded: bool = False) -> bytes:
    """The key, or SettingsError in one line naming the variable to set.

    `embedded`: the store is this data dir's own redis-server (the key file may be created).
    """
    if settings.token_key is not None:
        return settings.token_key
    path = settings.token_key_file
    if path is None and embedded:
        path = settings.data_dir / defaults.TOKEN_KEY_FILE
    if path is None:
        raise SettingsError(
            "REGDB_TOKEN_KEY (or REGDB_TOKEN_KEY_FILE) must be set when REDIS_URL is: every "
            "API process and `regdb token` digest tokens with that one key "
            "(make one with `openssl rand -hex 32`)"
        )
    try:
        return load_server_key(path, create=embedded and settings.token_key_file is None)
    except FileNotFoundError:
        raise SettingsError(f"REGDB_TOKEN_KEY_FILE {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot use the token key file: {exc}") from None
