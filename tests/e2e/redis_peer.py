"""A redis-server that a test can stop and start again on the same port
(shared counters: failure modes and recovery), for modelgate's e2e tests.

peers.start_redis gives a session-wide server; this one belongs to one test:

    from redis_peer import start_restartable_redis
    r = start_restartable_redis(tmp_path / "redis")
    r.url                  # redis://127.0.0.1:PORT
    r.stop()               # SIGTERM/SIGKILL by PID (process group), data gone
    r.restart()            # same port, empty data set (no persistence)
    r.keys("modelgate:*")  # KEYS through a raw RESP connection
    r.stop()

Without persistence (`--save '' --appendonly no`) a restart loses every
counter: the tests use that to tell what was counted after the restart.
"""

from __future__ import annotations

import os
from pathlib import Path

import peers
from peers import LOCALHOST, REDIS_BIN, SMALL_TIMEOUT, PeerError, _clean_env, free_port


class RestartableRedis:
    """One redis-server at a time on a fixed port; see the module doc."""

    def __init__(self, workdir: Path, port: int, extra_args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.port = port
        self.extra_args = extra_args
        self.generation = 0
        self.proc: peers.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive

    def start(self, timeout: float = SMALL_TIMEOUT) -> "RestartableRedis":
        if not Path(REDIS_BIN).exists():
            raise PeerError(f"{REDIS_BIN} is missing: install Debian's redis-server (scripts/install-deps.sh)")
        if self.running:
            raise PeerError("redis-server is already running")
        self.generation += 1
        cmd = [
            REDIS_BIN, "--port", str(self.port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), "--daemonize", "no", "--logfile", "", "--protected-mode", "yes",
            *self.extra_args,
        ]
        log = self.workdir / f"redis-{self.generation}.log"
        proc = peers.Redis("redis", cmd, log, cwd=self.workdir, env=_clean_env())
        proc.port = self.port
        proc.wait_ready(proc.ping, timeout, "PING")
        self.proc = proc
        return self

    def stop(self) -> None:
        """Stop the server by PID (its process group); idempotent."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self, timeout: float = SMALL_TIMEOUT) -> "RestartableRedis":
        self.stop()
        return self.start(timeout)

    def command(self, *args):
        if self.proc is None:
            raise PeerError("redis-server is stopped")
        return self.proc.command(*args)

    def keys(self, pattern: str = "modelgate:*") -> list[str]:
        return sorted(self.command("KEYS", pattern) or [])

    def get_int(self, key: str) -> int:
        v = self.command("GET", key)
        return int(v) if v is not None else 0


def start_restartable_redis(workdir: str | os.PathLike, *, port: int | None = None,
                            extra_args: tuple[str, ...] = ()) -> RestartableRedis:
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    return RestartableRedis(work, port or free_port(), extra_args).start()
