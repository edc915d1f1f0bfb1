"""Child processes run and kept running by one regdb process (`serve`, `api -p N`, `worker -p N`).

Each child is `python -m regdb.cli <role> ...` in its own session (a Ctrl-C in the terminal
reaches only the supervisor, which stops them in order), restarted when it dies, and bound to
the supervisor's life (:mod:`regdb.lifetime`): it gets SIGTERM if the supervisor is killed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

from regdb.lifetime import child_env

log = logging.getLogger(__name__)

RESTART_CHECK_S = 1.0
"""How often the supervisor looks for children that died."""


class Supervisor:
    """Named children (`name -> regdb.cli arguments`), restarted when they die."""

    def __init__(
        self,
        env: Mapping[str, str],
        children: Mapping[str, Sequence[str]],
        *,
        restart: bool = True,
    ) -> None:
        self.env = child_env(dict(env))
        self.restart = restart
        self.specs = {name: list(args) for name, args in children.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def _spawn(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "regdb.cli", *self.specs[name]],
            env=self.env,
            start_new_session=True,
        )

    def start(self) -> None:
        """Start every child, then watch them from a thread."""
        with self._lock:
            for name in self.specs:
                self._spawn(name)
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="supervisor")
        self._watcher.start()

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_CHECK_S):
            with self._lock:
                exited = [n for n, p in self.procs.items() if p.poll() is not None]
                if not self.restart:
                    if len(exited) == len(self.procs):
                        self.stopping.set()  # burst mode: all done
                    continue
                for name in exited:
                    if not self.stopping.is_set():
                        code = self.procs[name].returncode
                        log.warning("%s exited with %s; restarting it", name, code)
                        self._spawn(name)

    def run_until_signalled(self) -> int:
        """Start, then block until SIGINT/SIGTERM (or, without restart, until all exited);
        stop the children. Returns 0 when stopped by a signal (a child caught starting up
        by our SIGTERM may exit non-zero: that is no failure), else the worst exit code."""
        import signal

        signalled = threading.Event()

        def handle(signum: int, frame: object) -> None:
            signalled.set()
            self.stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handle)
        self.start()
        while not self.stopping.wait(RESTART_CHECK_S):
            pass
        self.stop()
        if signalled.is_set():
            return 0
        return max((abs(p.returncode or 0) for p in self.procs.values()), default=0)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every child, then SIGKILL those still running after `timeout_s`."""
        self.stopping.set()
        with self._lock:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.procs.values():
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
