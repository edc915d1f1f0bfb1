"""Child processes that never outlive `regdb serve`, however it dies (SIGKILL included).

Linux delivers a chosen signal to a process when the thread that forked it exits
(``prctl(PR_SET_PDEATHSIG)``). Python children of `serve` ask for it themselves at start-up
(:func:`die_with_parent`, told the parent's pid through :data:`PARENT_ENV`); the redis-server
child gets it from :func:`redis_preexec` between fork and exec. Either way, a child whose parent
is already gone by the time the signal is armed exits at once: the kernel would never send it.
On other systems these are no-ops and `serve` still stops its children on a clean exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

PARENT_ENV = "REGDB_PARENT_PID"
"""Environment variable naming the pid a child of `serve` must not outlive."""

_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _arm(sig: int, parent: int) -> None:
    """Ask for `sig` when the parent dies; exit now if it already has."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def die_with_parent() -> None:
    """In a child of `serve` (PARENT_ENV set): get SIGTERM when `serve` dies."""
    raw = os.environ.pop(PARENT_ENV, None)
    if raw and raw.isdigit():
        _arm(signal.SIGTERM, int(raw))


def child_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a Python child of this process that must die with it."""
    return {**env, PARENT_ENV: str(os.getpid())}


def redis_preexec() -> Callable[[], None]:
    """preexec_fn for redis-server: private files (umask 077) and SIGTERM (which makes it
    flush its append-only file) when this process dies."""
    parent = os.getpid()

    def preexec() -> None:
        os.umask(0o077)
        _arm(signal.SIGTERM, parent)

    return preexec


def pid_alive(pid: int, name: str) -> bool:
    """Whether `pid` runs a program whose command line mentions `name` (not a zombie)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): existence is all we can tell
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if "\nState:\tZ" in status:
        return False
    return name.encode() in cmdline


def port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on right now, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "address already in use"
            return exc.strerror or str(exc)
    return None
