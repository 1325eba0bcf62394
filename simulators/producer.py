"""Writing simulated events to a source's Redis stream: pipelined batches that survive a Redis restart.

Events are encoded with ``data.schema.encode`` under the run's producer id (a random
``sim-<source>-<hex>`` unless given; the runner gives the stable id of ``simulators.resume``) and
a sequence number counted from the run's first event, so ``src:seq`` identifies each event.
A batch is sent when it holds ``batch_size`` events or is ``flush_seconds`` old. When Redis is
unreachable the unsent batch is kept and resent, whole, after a capped, jittered exponential
backoff; entries that did reach Redis before the failure are then written twice under the same
``src:seq``, which the aggregator's duplicate check discards.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from data.connection import CLUSTER_MOVES, client_from_url
from data.schema import encode
from simulators.source import Event

log = logging.getLogger(__name__)

BATCH_SIZE = 500
FLUSH_SECONDS = 0.2
BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
# Once asked to stop, how long a producer keeps retrying a batch Redis does not take.
STOP_GRACE_S = 10.0


def producer_client(url: str) -> redis.Redis:
    """Build a client that fails fast, so the producer's own backoff decides when to retry."""
    return client_from_url(url, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


class StreamProducer:
    """Append events to one stream in pipelined, capped batches, resending a batch Redis did not take."""

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        stream: str,
        *,
        source: str,
        maxlen: int,
        src: str | None = None,
        seq: int = 0,
        batch_size: int = BATCH_SIZE,
        flush_seconds: float = FLUSH_SECONDS,
        stop: threading.Event | None = None,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
    ):
        self.connect = connect
        self.stream = stream
        self.source = source
        self.maxlen = maxlen
        self.src = src or f"sim-{source}-{secrets.token_hex(4)}"
        self.seq = seq
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.stop = stop or threading.Event()
        self.backoff_first_s = backoff_first_s
        self.backoff_cap_s = backoff_cap_s
        self.sent: Counter[str] = Counter()
        self.reconnects = 0
        self.newest_ts = 0
        self._client = connect()
        self._batch: list[dict[str, str]] = []
        self._batch_types: list[str] = []
        self._batch_started = time.monotonic()

    @property
    def unsent(self) -> int:
        """Number of events encoded but not yet acknowledged by Redis."""
        return len(self._batch)

    def add(self, event: Event) -> None:
        """Encode an event with the next sequence number and send the batch when it is full or old."""
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append(encode(event.type, src=self.src, seq=self.seq, ts=event.ts, **event.fields))
        self._batch_types.append(event.type)
        self.seq += 1
        self.newest_ts = event.ts
        if len(self._batch) >= self.batch_size:
            self.flush()

    def flush_if_due(self) -> None:
        """Send the batch if it has waited flush_seconds."""
        if self._batch and time.monotonic() - self._batch_started >= self.flush_seconds:
            self.flush()

    def flush(self, grace_s: float = STOP_GRACE_S) -> bool:
        """Send the batch, retrying through Redis outages; False if still unsent grace_s after a stop."""
        if not self._batch:
            return True
        attempt = 0
        give_up_at = None
        while True:
            try:
                pipe = self._client.pipeline(transaction=False)
                for fields in self._batch:
                    pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                pipe.execute()
                break
            except (redis.ConnectionError, redis.TimeoutError, *CLUSTER_MOVES) as exc:
                # On a cluster, a slot moving or a node lost is outlasted like an outage.
                attempt += 1
                if self.stop.is_set() and give_up_at is None:
                    give_up_at = time.monotonic() + grace_s
                delay = min(self.backoff_cap_s, self.backoff_first_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if give_up_at is not None and time.monotonic() + delay > give_up_at:
                    log.error(
                        "%s: redis still unreachable while stopping (%s); %d events (seq %d-%d) not sent",
                        self.src, exc, len(self._batch), self.seq - len(self._batch), self.seq - 1,
                    )  # fmt: skip
                    return False
                log.warning(
                    "%s: redis unreachable (%s); resending %d events in %.2f s (attempt %d)",
                    self.src, exc, len(self._batch), delay, attempt,
                )  # fmt: skip
                time.sleep(delay)
                self._reconnect()
        if attempt:
            log.info("%s: redis back after %d attempts; batch of %d sent", self.src, attempt, len(self._batch))
        self.sent.update(self._batch_types)
        self._batch.clear()
        self._batch_types.clear()
        return True

    def _reconnect(self) -> None:
        self.reconnects += 1
        # A broken client may fail to close; a new one replaces it either way.
        with contextlib.suppress(redis.RedisError):
            self._client.close()
        try:
            self._client = self.connect()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.debug("%s: reconnect failed: %s", self.src, exc)
