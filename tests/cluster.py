"""A real Redis Cluster of three primaries on loopback ports, for the tests that scale out.

Started from the same ``redis-server`` binary as the rest of the session, each node in its own
folder with ``--cluster-enabled yes``; the slots are split in three (``CLUSTER ADDSLOTS``, which
every release has, rather than 7.0's ``ADDSLOTSRANGE``), the nodes meet, and the cluster is used
once every node says ``cluster_state:ok``. ``move_slot`` reshards one slot, keys and all, as an
operator adding a machine would, so a test can make a running worker meet MOVED and ASK.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

SLOTS = 16384
BUS_OFFSET = 10_000  # a node's cluster bus listens on its port plus this


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """Ports free on loopback, each with its bus port free too (others on this machine pick ports as well)."""
    found: list[int] = []
    while len(found) < n:
        port = random.randrange(20_000, 30_000)
        if port not in found and _free(port) and _free(port + BUS_OFFSET):
            found.append(port)
    return found


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


class LocalCluster:
    """Three cluster-enabled redis-server processes on 127.0.0.1, the slots shared between them."""

    def __init__(self, binary: str, directory: Path, primaries: int = 3):
        self.binary = binary
        self.directory = Path(directory)
        self.primaries = primaries
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def start(self, timeout: float = 60.0) -> LocalCluster:
        for attempt in range(3):
            self.ports = _free_ports(self.primaries)
            try:
                self._start_nodes(timeout)
                break
            except TimeoutError:
                self.stop()  # most likely a port taken between the check and the start: try others
                if attempt == 2:
                    raise
        share = SLOTS // self.primaries
        for i, port in enumerate(self.ports):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * share - 1
            with self.node(port) as node:
                node.execute_command("CLUSTER", "ADDSLOTS", *range(i * share, last + 1))
        with self.node(self.ports[0]) as first:
            for port in self.ports[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        wait_for(self._ok, timeout, "cluster_state:ok on every node")
        return self

    def _start_nodes(self, timeout: float) -> None:
        for port in self.ports:
            home = self.directory / str(port)
            home.mkdir(parents=True, exist_ok=True)
            args = [
                self.binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--dir", str(home),
                "--appendonly", "no",
                "--save", "",
                "--hash-max-ziplist-entries", "16",
                "--daemonize", "no",
                "--logfile", str(home / "redis.log"),
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
            )
        for port, process in zip(self.ports, self.processes):
            wait_for(lambda p=process, n=port: p.poll() is not None or self._pings(n), timeout, f"node {port}")
            if process.poll() is not None:
                raise TimeoutError(f"node {port} exited")

    def _pings(self, port: int) -> bool:
        try:
            with self.node(port) as node:
                return bool(node.ping())
        except redis.ConnectionError:
            return False

    def _ok(self) -> bool:
        for port in self.ports:
            with self.node(port) as node:
                info = node.execute_command("CLUSTER", "INFO").decode()
                facts = dict(line.split(":", 1) for line in info.split() if ":" in line)
                if facts.get("cluster_state") != "ok" or int(facts.get("cluster_known_nodes", 0)) != self.primaries:
                    return False
                if int(facts.get("cluster_slots_ok", 0)) != SLOTS:
                    return False
        return True

    def node_ids(self) -> dict[int, str]:
        with self.node(self.ports[0]) as first:
            lines = first.execute_command("CLUSTER", "NODES").decode().splitlines()
        return {int(line.split()[1].split("@")[0].rsplit(":", 1)[1]): line.split()[0] for line in lines}

    def owner_of(self, slot: int) -> int:
        """The port of the primary serving a slot."""
        with self.node(self.ports[0]) as first:
            for start, end, (_, port, *_), *_ in first.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(port)
        raise LookupError(slot)

    def move_slot(self, slot: int, to_port: int, timeout: float = 30.0) -> None:
        """Reshard one slot to another primary, keys and all (the steps ``redis-cli --cluster reshard`` takes)."""
        from_port = self.owner_of(slot)
        if from_port == to_port:
            return
        ids = self.node_ids()
        with self.node(from_port) as source, self.node(to_port) as target:
            target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from_port])
            source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                source.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
            for port in self.ports:
                with self.node(port) as node:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        wait_for(lambda: self._ok() and self.owner_of(slot) == to_port, timeout, f"slot {slot} served by {to_port}")

    def stop(self, timeout: float = 10.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
