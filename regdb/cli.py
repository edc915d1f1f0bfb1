"""The `regdb` command: serve, api, worker, scheduler, fsck."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from regdb.embedded import EmbeddedRedis, EmbeddedRedisError
from regdb.settings import Settings, SettingsError

log = logging.getLogger("regdb")

CHILD_ROLES = ("worker", "scheduler")


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


def _run_api(settings: Settings) -> None:
    import uvloop
    from aiohttp import web

    from api.app import create_app

    uvloop.install()  # libuv-based loop: cheaper per request than asyncio's default
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda msg: log.info("%s", msg.strip()),
        access_log=None,
    )


def cmd_api(settings: Settings, args: argparse.Namespace) -> None:
    """Only the HTTP API (production: one process per Procfile line)."""
    _need_redis(settings, "api")
    _run_api(settings)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    """An RQ worker that runs probe and alert-delivery jobs."""
    _need_redis(settings, "worker")
    from worker.main import run

    run(settings, burst=args.burst)


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> None:
    """The APScheduler process that enqueues due probes (one active at a time)."""
    _need_redis(settings, "scheduler")
    from scheduler.main import run

    run(settings)


def cmd_fsck(settings: Settings, args: argparse.Namespace) -> None:
    """Check (and with --repair, rebuild) the index sets against the entries."""
    from regdb.fsck import main as fsck_main

    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
        settings = settings.replace(redis_url=embedded.start())
    try:
        code = fsck_main(settings, repair=args.repair)
    finally:
        if embedded is not None:
            embedded.stop()
    sys.exit(code)


class Children:
    """The worker and scheduler child processes of `regdb serve`, restarted if they die."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def _spawn(self, role: str) -> None:
        # Own session: a Ctrl-C in the terminal reaches only `serve`, which stops them in order.
        self.procs[role] = subprocess.Popen(
            [sys.executable, "-m", "regdb.cli", role], env=self.env, start_new_session=True
        )

    def start(self) -> None:
        for role in CHILD_ROLES:
            self._spawn(role)
        threading.Thread(target=self._watch, daemon=True, name="children").start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            with self._lock:
                for role, proc in list(self.procs.items()):
                    if proc.poll() is not None and not self.stopping.is_set():
                        log.warning("%s exited with %s; restarting it", role, proc.returncode)
                        self._spawn(role)

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def child_env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of `serve`'s children: its Redis, and the defaults it resolved from the
    absence of REDIS_URL (hooks may reach loopback), which a child seeing REDIS_URL would not."""
    assert settings.redis_url is not None
    return dict(
        env,
        REDIS_URL=settings.redis_url,
        HOOK_ALLOW_LOOPBACK="true" if settings.hook_allow_loopback else "false",
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    """Everything in one process tree: embedded Redis (unless REDIS_URL), API, worker, scheduler."""
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
        try:
            settings = settings.replace(redis_url=embedded.start())
        except EmbeddedRedisError as exc:
            sys.exit(f"regdb serve: {exc}")
        log.info(
            "using embedded Redis at %s (data in %s)",
            settings.redis_url,
            settings.data_dir.resolve(),
        )
    assert settings.redis_url is not None
    children = Children(child_env(settings, os.environ))
    try:
        children.start()
        _run_api(settings)
    finally:
        children.stop()
        if embedded is not None:
            embedded.stop()
            log.info("embedded Redis stopped")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(prog="regdb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("serve", cmd_serve), ("api", cmd_api)):
        p = sub.add_parser(name, help=(func.__doc__ or "").strip())
        p.add_argument("--host", help="bind address (default 127.0.0.1, env HOST)")
        p.add_argument("--port", type=int, help="port (default 8000, env PORT)")
        if name == "serve":
            p.add_argument(
                "--data-dir", type=Path, help="embedded Redis data directory (default ./data)"
            )
        p.set_defaults(func=func)
    p = sub.add_parser("worker", help=(cmd_worker.__doc__ or "").strip())
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help=(cmd_scheduler.__doc__ or "").strip())
    p.set_defaults(func=cmd_scheduler)
    p = sub.add_parser("fsck", help=(cmd_fsck.__doc__ or "").strip())
    p.add_argument("--repair", action="store_true", help="rebuild the indexes from the entries")
    p.add_argument("--data-dir", type=Path, help="embedded data directory when REDIS_URL is unset")
    p.set_defaults(func=cmd_fsck)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `regdb` console script."""
    args = build_parser().parse_args(argv)
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
