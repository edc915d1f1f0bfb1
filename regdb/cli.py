"""The `regdb` command: serve, api, worker, scheduler, fsck, export, import, and the client."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from redis.exceptions import RedisError

from regdb import client, defaults, token_cli
from regdb.embedded import EmbeddedRedis, EmbeddedRedisError, served_url
from regdb.lifetime import die_with_parent, port_taken
from regdb.server_key import server_key
from regdb.settings import Settings, SettingsError, check_api_bind
from regdb.supervise import Supervisor

log = logging.getLogger("regdb")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


def _need_redis(settings: Settings, role: str) -> None:
    if settings.redis_url is None:
        sys.exit(
            f"regdb {role}: REDIS_URL is not set. Set it (e.g. redis://127.0.0.1:6379/0), "
            "or run `regdb serve`, which starts a private Redis."
        )


def _with_keys(settings: Settings, role: str, *, embedded_dir: Path | None = None) -> Settings:
    """`settings` with the secret keys this process uses, checked against the store (the
    canary, regdb/keyring.py); exits with one line when they are missing or wrong, so no
    process starts that would fail later, deep in a probe."""
    from redis.exceptions import RedisError

    from regdb.connections import sync_redis
    from regdb.keyring import KeyringError, open_keyring
    from regdb.keys import Keys

    conn = sync_redis(settings)
    try:
        found = open_keyring(settings, conn, Keys(settings.prefix), embedded_dir=embedded_dir)
    except KeyringError as exc:
        sys.exit(f"regdb {role}: refusing to start: {exc}")
    except (RedisError, OSError) as exc:
        sys.exit(f"regdb {role}: cannot reach Redis to check the secret keys: {exc}")
    finally:
        conn.close()
    return settings.replace(secret_keys=found)


def _run_api(settings: Settings, *, reuse_port: bool = False) -> None:
    import uvloop
    from aiohttp import web

    from api.app import create_app
    from regdb.gc_tuning import settle_gc

    uvloop.install()  # libuv-based loop: cheaper per request than asyncio's default
    app = create_app(settings)
    settle_gc()  # every module is loaded and the app built (regdb/gc_tuning.py)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda msg: log.info("%s", msg.strip()),
            access_log=None,
            reuse_port=reuse_port or None,
        )
    except OSError as exc:  # the port was taken between the check and the bind
        sys.exit(f"regdb: cannot listen on {settings.host}:{settings.port}: {exc.strerror}")


def _check_api(settings: Settings, role: str, *, embedded: bool = False) -> Settings:
    """Settings the API can start with, or exit with one line: REGDB_AUTH=off only on
    loopback, and a token key every API process shares (`embedded`: the data dir's file,
    handed to the children as REGDB_TOKEN_KEY_FILE)."""
    try:
        check_api_bind(settings)
        server_key(settings, embedded=embedded)
    except SettingsError as exc:
        sys.exit(f"regdb {role}: {exc}")
    if embedded and settings.token_key is None and settings.token_key_file is None:
        return settings.replace(token_key_file=settings.data_dir / defaults.TOKEN_KEY_FILE)
    return settings


def _first_admin_token(settings: Settings) -> None:
    """An empty store gets an admin token, written to the data dir (see README: Tokens)."""
    import asyncio

    from regdb.audit_log import AuditLog
    from regdb.connections import async_redis
    from regdb.keys import Keys
    from regdb.token_service import first_admin_token
    from regdb.tokens import TokenStore

    async def ensure() -> None:
        r = async_redis(settings)
        try:
            keys = Keys(settings.prefix)
            store = TokenStore(r, keys, server_key(settings))
            audit = AuditLog(r, keys, keep=settings.audit_keep)
            path = (settings.data_dir / defaults.ADMIN_TOKEN_FILE).resolve()
            if not await first_admin_token(store, path, audit):
                log.info(
                    "no new admin token: %s or an admin token exists (`regdb token create` "
                    "makes more)",
                    path,
                )
        finally:
            await r.aclose()

    asyncio.run(ensure())


def _check_port(settings: Settings, role: str) -> None:
    """Exit with one line when the API's address cannot be listened on."""
    why = port_taken(settings.host, settings.port)
    if why is not None:
        sys.exit(
            f"regdb {role}: cannot listen on {settings.host}:{settings.port}: {why} "
            "(is another regdb running? choose another --port)"
        )


def _api_children(settings: Settings, processes: int) -> dict[str, list[str]]:
    """N API processes sharing one port (SO_REUSEPORT: the kernel spreads connections)."""
    args = ["api", "--reuse-port", "--host", settings.host, "--port", str(settings.port)]
    return {f"api-{i + 1}": args for i in range(processes)}


def cmd_api(settings: Settings, args: argparse.Namespace) -> None:
    """Only the HTTP API (production: one process per Procfile line)."""
    _need_redis(settings, "api")
    settings = _with_keys(_check_api(settings, "api"), "api")
    if args.reuse_port:  # a child of `api --processes N` or `serve --processes N`
        _run_api(settings, reuse_port=True)
        return
    _check_port(settings, "api")
    if args.processes == 1:
        _run_api(settings)
        return
    log.info("starting %d API processes on %s:%d", args.processes, settings.host, settings.port)
    sys.exit(Supervisor(os.environ, _api_children(settings, args.processes)).run_until_signalled())


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    """An RQ worker that runs probe and alert-delivery jobs."""
    _need_redis(settings, "worker")
    settings = _with_keys(settings, "worker")
    if args.processes > 1:
        role = ["worker", "--burst"] if args.burst else ["worker"]
        children = {f"worker-{i + 1}": role for i in range(args.processes)}
        supervisor = Supervisor(os.environ, children, restart=not args.burst)
        sys.exit(supervisor.run_until_signalled())
    from worker.main import run

    run(settings, burst=args.burst)


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> None:
    """The APScheduler process that enqueues due probes (one active at a time)."""
    _need_redis(settings, "scheduler")
    settings = _with_keys(settings, "scheduler")
    from scheduler.main import run

    run(settings)


@contextmanager
def _admin_redis(settings: Settings, role: str, *, attach: bool = False) -> Iterator[Settings]:
    """Settings with a Redis to work on and the secret keys: REDIS_URL, else the embedded data
    dir (refused with one line while `regdb serve` holds it: its socket is the way in then;
    `attach` goes through that socket itself)."""
    if settings.redis_url is not None:
        yield _with_keys(settings, role)
        return
    running = served_url(settings.data_dir) if attach else None
    if running is not None:
        yield _with_keys(settings.replace(redis_url=running), role, embedded_dir=settings.data_dir)
        return
    try:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
        url = embedded.start()
    except EmbeddedRedisError as exc:
        sys.exit(f"regdb {role}: {exc}")
    try:
        ready = settings.replace(redis_url=url)
        yield _with_keys(ready, role, embedded_dir=settings.data_dir)
    finally:
        embedded.stop()


def cmd_fsck(settings: Settings, args: argparse.Namespace) -> None:
    """Check (and with --repair, rebuild) the index sets against the entries."""
    from regdb.fsck import main as fsck_main

    with _admin_redis(settings, "fsck") as ready:
        code = fsck_main(ready, repair=args.repair)
    sys.exit(code)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    """Bring a store written by an earlier regdb to today's layout and give every entry and
    alert hook without an owner one (idempotent)."""
    from regdb.connections import sync_redis
    from regdb.errors import InvalidInput
    from regdb.fsck import check
    from regdb.keys import Keys
    from regdb.migrate import migrate
    from regdb.principal import DEFAULT_OWNER
    from regdb.secret_box import SecretBox
    from regdb.tokens import check_owner

    try:
        owner = check_owner(args.default_owner or DEFAULT_OWNER)
    except InvalidInput as exc:
        sys.exit(f"regdb migrate: --default-owner: {exc.message}")
    with _admin_redis(settings, "migrate") as ready:
        conn = sync_redis(ready)
        try:
            keys = Keys(ready.prefix)
            box = SecretBox(ready.secret_keys)
            report = migrate(conn, keys, box, ready, default_owner=owner)
            consistent = check(conn, keys, box=box).ok
        finally:
            conn.close()
    print(
        f"migrated {report.migrated} entries, {report.already} already current, "
        f"{len(report.unreadable)} unreadable, {report.sealed} secrets sealed; "
        + ("consistent" if consistent else "still inconsistent: run `regdb fsck`")
    )
    if report.owned_entries or report.owned_hooks:
        print(
            f"owner {owner!r} given to {report.owned_entries} entries and "
            f"{report.owned_hooks} alert hooks without one "
            f"({report.had_owner} already had an owner)"
        )
    else:
        print(f"ownership: nothing to do, all {report.had_owner} entries and hooks have an owner")
    sys.exit(0 if consistent and not report.unreadable else 1)


def cmd_export(settings: Settings, args: argparse.Namespace) -> None:
    """Write the whole catalog (entries, hooks) as NDJSON to stdout or --output."""
    from regdb.transfer.cli import export_main

    with _admin_redis(settings, "export") as ready:
        code = export_main(ready, output=args.output, with_secrets=not args.without_secrets)
    sys.exit(code)


def cmd_import(settings: Settings, args: argparse.Namespace) -> None:
    """Restore a `regdb export` file, or the old MongoDB service's mongoexport output."""
    from regdb.transfer.cli import import_main

    with _admin_redis(settings, "import") as ready:
        code = import_main(ready, args.file, dry_run=args.dry_run)
    sys.exit(code)


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    """Create, list and revoke API tokens (straight in Redis, like fsck)."""
    embedded = settings.redis_url is None
    try:
        key = server_key(settings, embedded=embedded)
    except SettingsError as exc:
        print(f"regdb token: {exc}", file=sys.stderr)
        sys.exit(token_cli.USAGE)
    with _admin_redis(settings, "token", attach=True) as ready:
        code = token_cli.run(ready, key, args)
    sys.exit(code)


def serve_child_env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of `serve`'s children: its Redis, its secret keys (the data dir's key
    file's, unless REGDB_SECRET_KEYS named them), its token key file, and the defaults it
    resolved from the absence of REDIS_URL (hooks may reach loopback), which a child seeing
    REDIS_URL would not."""
    from regdb.keyring import keys_env

    assert settings.redis_url is not None
    out = dict(
        env,
        REDIS_URL=settings.redis_url,
        HOOK_ALLOW_LOOPBACK="true" if settings.hook_allow_loopback else "false",
    )
    if settings.secret_keys:
        out["REGDB_SECRET_KEYS"] = keys_env(settings.secret_keys)
    if settings.token_key_file is not None:
        out["REGDB_TOKEN_KEY_FILE"] = str(settings.token_key_file.resolve())
    return out


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    """Everything in one process tree: embedded Redis (unless REDIS_URL), API, worker, scheduler."""
    _check_port(settings, "serve")
    settings = _check_api(settings, "serve", embedded=settings.redis_url is None)
    embedded = None
    if settings.redis_url is None:
        try:
            embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
            settings = settings.replace(redis_url=embedded.start())
        except EmbeddedRedisError as exc:
            sys.exit(f"regdb serve: {exc}")
        log.info(
            "using embedded Redis at %s (data in %s)",
            settings.redis_url,
            settings.data_dir.resolve(),
        )
    assert settings.redis_url is not None
    try:
        settings = _with_keys(
            settings, "serve", embedded_dir=settings.data_dir if embedded is not None else None
        )
    except SystemExit:
        if embedded is not None:
            embedded.stop()
        raise
    try:
        _first_admin_token(settings)
    except (RedisError, OSError) as exc:  # Redis down, the data dir not writable
        if embedded is not None:
            embedded.stop()
        sys.exit(f"regdb serve: cannot check for an admin token: {exc}")
    roles: dict[str, list[str]] = {f"worker-{i + 1}": ["worker"] for i in range(args.workers)}
    roles["scheduler"] = ["scheduler"]
    if args.processes > 1:
        roles.update(_api_children(settings, args.processes))
    children = Supervisor(serve_child_env(settings, os.environ), roles)
    try:
        if args.processes > 1:
            children.run_until_signalled()
        else:
            children.start()
            _run_api(settings)
    finally:
        children.stop()
        if embedded is not None:
            embedded.stop()
            log.info("embedded Redis stopped")


def cmd_secrets(settings: Settings, args: argparse.Namespace) -> None:
    """Secret keys: `generate-key` prints a new one; `rotate` seals every secret with the first."""
    from regdb.secret_box import generate_key

    if args.action == "generate-key":
        print(generate_key())
        return
    from regdb.connections import sync_redis
    from regdb.keys import Keys
    from regdb.reseal import reseal_all
    from regdb.secret_box import SecretBox

    with _admin_redis(settings, "secrets rotate") as ready:
        conn = sync_redis(ready)
        try:
            box = SecretBox(ready.secret_keys)
            report = reseal_all(conn, Keys(ready.prefix), box)
        finally:
            conn.close()
    print(
        f"sealed with key {box.primary_id}: {report.entries} entries and {report.hooks} alert "
        f"hooks changed, {report.unchanged} already under it, {len(report.failed)} failed"
    )
    for what in report.failed:
        print(f"  not opened: {what}", file=sys.stderr)
    if report.failed:
        print("keep the old keys until these are fixed; the canary stays under the old key")
    sys.exit(1 if report.failed else 0)


def _count(text: str) -> int:
    """A process count for argparse: 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be from 1 to 64")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(prog="regdb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("serve", cmd_serve), ("api", cmd_api)):
        p = sub.add_parser(name, help=(func.__doc__ or "").strip())
        p.add_argument("--host", help="bind address (default 127.0.0.1, env HOST)")
        p.add_argument("--port", type=int, help="port (default 8000, env PORT)")
        p.add_argument(
            "--processes",
            type=_count,
            default=1,
            help="API processes sharing the port (default 1; one per core is a good start)",
        )
        if name == "serve":
            p.add_argument(
                "--data-dir", type=Path, help="embedded Redis data directory (default ./data)"
            )
            p.add_argument("--workers", type=_count, default=1, help="RQ worker processes")
        else:
            p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
    p = sub.add_parser("worker", help=(cmd_worker.__doc__ or "").strip())
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument("--processes", type=_count, default=1, help="worker processes (default 1)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help=(cmd_scheduler.__doc__ or "").strip())
    p.set_defaults(func=cmd_scheduler)
    admin = "Admin tool: talks to Redis directly (REDIS_URL, or --data-dir when unset)."
    p = sub.add_parser("fsck", help=(cmd_fsck.__doc__ or "").strip(), description=admin)
    p.add_argument("--repair", action="store_true", help="rebuild the indexes from the entries")
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_fsck)
    p = sub.add_parser("migrate", help=(cmd_migrate.__doc__ or "").strip(), description=admin)
    p.add_argument(
        "--default-owner",
        metavar="NAME",
        help="owner of entries and hooks stored before ownership (default: admin)",
    )
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("export", help=(cmd_export.__doc__ or "").strip(), description=admin)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    p.add_argument("--without-secrets", action="store_true", help='write credentials as "***"')
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help=(cmd_import.__doc__ or "").strip(), description=admin)
    p.add_argument("file", help="NDJSON or JSON array file, or - for stdin")
    p.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("secrets", help=(cmd_secrets.__doc__ or "").strip(), description=admin)
    p.add_argument(
        "action",
        choices=("generate-key", "rotate"),
        help="generate-key: print a new key for REGDB_SECRET_KEYS (nothing else is touched); "
        "rotate: re-seal every stored secret with the first key (idempotent, resumable)",
    )
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_secrets)
    token_cli.add_parser(sub, admin)
    p = sub.choices["token"]
    p.set_defaults(func=cmd_token)
    # The HTTP client (regdb/client/): registries, health, hooks, watch.
    client.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `regdb` console script."""
    die_with_parent()  # a worker or scheduler child of `regdb serve` must not outlive it
    args = build_parser().parse_args(argv)
    if getattr(args, "http_client", False):  # the HTTP client needs none of the server's settings
        args.func(None, args)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"regdb: invalid configuration: {exc}")
    changes: dict[str, object] = {}
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None):
        if not 1 <= args.port <= 65535:
            sys.exit("regdb: --port must be between 1 and 65535")
        changes["port"] = args.port
    if getattr(args, "data_dir", None):
        changes["data_dir"] = args.data_dir
    if changes:
        settings = settings.replace(**changes)
    _setup_logging(settings)
    args.func(settings, args)


if __name__ == "__main__":
    main()
