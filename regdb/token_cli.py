"""`regdb token create|list|revoke`: API tokens straight in Redis, for the operator.

Reached like fsck: REDIS_URL (with REGDB_TOKEN_KEY or REGDB_TOKEN_KEY_FILE), or a data dir,
whether a `regdb serve` runs on it (through its socket) or not. Exit codes: 0 done, 1 it could
not be done (no such token, Redis down), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aredis
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from regdb.audit import AS_OPERATOR, Action
from regdb.audit_log import AuditLog
from regdb.connections import async_redis
from regdb.errors import InvalidInput, NotFound
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.tokens import OnWrite, TokenRecord, TokenStore, check_owner, parse_scopes

USAGE = 2
FAILED = 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], admin: str) -> None:
    """`regdb token ...` and its three subcommands."""
    p = sub.add_parser("token", help="create, list and revoke API tokens", description=admin)
    verbs = p.add_subparsers(dest="token_command", required=True)
    create = verbs.add_parser(
        "create", help="create a token; prints it alone on the last line", description=admin
    )
    create.add_argument("--owner", required=True, help="who it acts for (e.g. mlops-team)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["read", "write", "admin"],
        help="read, write (implies read) or admin; repeatable",
    )
    create.add_argument("--name", default="", help="a label: what the token is for")
    create.add_argument("--expires-in-days", type=int, help="lifetime in days (default: none)")
    listing = verbs.add_parser("list", help="list tokens (never their secrets)", description=admin)
    listing.add_argument("--owner", help="only this owner's tokens")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    revoke = verbs.add_parser("revoke", help="revoke a token by its id", description=admin)
    revoke.add_argument("id", help="the token's id (from `regdb token list`)")
    for verb in (create, listing, revoke):
        verb.add_argument(
            "--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset"
        )


def run(settings: Settings, key: bytes, args: argparse.Namespace) -> int:
    """Run one `regdb token` subcommand against the store `settings` names."""
    try:
        return asyncio.run(_run(settings, key, args))
    except InvalidInput as exc:
        print(f"regdb token: {exc.message}", file=sys.stderr)
        return USAGE
    except NotFound as exc:
        print(f"regdb token: {exc.message}", file=sys.stderr)
        return FAILED
    except (RedisError, OSError) as exc:
        print(f"regdb token: storage unavailable: {exc}", file=sys.stderr)
        return FAILED


async def _run(settings: Settings, key: bytes, args: argparse.Namespace) -> int:
    r: aredis.Redis = async_redis(settings)
    try:
        keys = Keys(settings.prefix)
        store = TokenStore(r, keys, key)
        # The CLI acts as the operator; its writes are audited like the API's.
        audit = AuditLog(r, keys, keep=settings.audit_keep)
        if args.token_command == "create":
            on_create = audit.token_writes(AS_OPERATOR, Action.TOKEN_CREATE)
            return await _create(store, args, on_create)
        if args.token_command == "list":
            return await _list(store, args)
        on_revoke = audit.token_writes(AS_OPERATOR, Action.TOKEN_REVOKE)
        record = await store.revoke(args.id, on_write=on_revoke)
        print(f"revoked token {record.id} ({record.owner})")
        return 0
    finally:
        await r.aclose()


async def _create(store: TokenStore, args: argparse.Namespace, on_write: OnWrite) -> int:
    days = args.expires_in_days
    if days is not None and not 1 <= days <= 3650:
        raise InvalidInput("--expires-in-days must be from 1 to 3650")
    token, record = await store.create(
        check_owner(args.owner),
        parse_scopes(args.scope),
        label=args.name,
        expires_in=timedelta(days=days) if days is not None else None,
        on_write=on_write,
    )
    scopes = ",".join(sorted(record.scopes))
    expiry = f", expires {record.public()['expires_at']}" if record.expires_at else ""
    print(f"created token {record.id} for {record.owner} ({scopes}{expiry}); it is shown once:")
    print(token)
    return 0


async def _list(store: TokenStore, args: argparse.Namespace) -> int:
    owner = check_owner(args.owner) if args.owner else None
    records = await store.list_tokens(owner)
    if args.output == "json":
        print(json.dumps([r.public() for r in records], indent=2))
        return 0
    Console().print(_table(records))
    return 0


def _table(records: list[TokenRecord]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)  # whole: `regdb token revoke` needs it
    for name in ("owner", "scopes", "label", "created", "expires", "last used", "revoked"):
        table.add_column(name)
    for r in records:
        view = r.public()
        table.add_row(
            r.id,
            r.owner,
            ",".join(view["scopes"]),
            r.label,
            view["created_at"],
            view["expires_at"] or "-",
            view["last_used_at"] or "-",
            view["revoked_at"] or "-",
        )
    return table
