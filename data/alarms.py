"""The alarms' state and log, shared by every screen and every dashboard process.

Each tick the conditions that hold (crowding, a case cluster, an urgent-complaint surge, a service center
over its wait target) are folded in here once. An alarm is *raised* when its condition first holds,
*acknowledged* when an operator says they are on it, and *cleared* once its condition has stayed false for
``alarm_clear_after_s``: that hold is the hysteresis that keeps an alarm from flapping at its threshold.
Every change is appended to a log stream kept ``alarm_log_days``.

The writes are safe with several processes at once: a raise is an HSETNX of its start and a clear an HDEL
of it, so each happens, and is logged, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from data.keys import Keys

STATES = ("raised", "acknowledged")
LOG_FIELDS = ("at_ms", "event", "key", "kind", "severity", "what", "where", "by", "role", "note")
NOTE_MAX = 300


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AlarmBook:
    def __init__(self, client: redis.Redis, keys: Keys, clear_after_s: float, log_days: float):
        self.client = client
        self.keys = keys
        self.clear_after_ms = int(clear_after_s * 1000)
        self.log_ms = int(log_days * 86_400_000)

    def _k(self, name: str) -> str:
        return self.keys.alarms(name)

    def _log(self, pipe, at_ms: int, event: str, alarm: dict, **more: str) -> None:
        entry = {
            "at_ms": str(at_ms),
            "event": event,
            "key": alarm["key"],
            "kind": alarm.get("kind", ""),
            "severity": str(alarm.get("severity", "")),
            "what": alarm.get("what", ""),
            "where": alarm.get("where", ""),
            **more,
        }
        pipe.xadd(self._k("log"), entry)

    def track(self, holding: Iterable[dict], now_ms: int) -> list[dict]:
        """Fold the conditions that hold now into the alarms' state; return every alarm in force (raised or
        acknowledged, including one whose condition lapsed less than the hold ago), each with ``since_ms``,
        ``state``, ``lapsed`` and, once acknowledged, ``ack`` ({by, role, at_ms, note})."""
        holding = {a["key"]: a for a in holding}
        with self.client.pipeline(transaction=False) as pipe:
            for key, alarm in holding.items():
                pipe.hsetnx(self._k("since"), key, now_ms)
                pipe.hset(self._k("seen"), key, now_ms)
                pipe.hset(self._k("shown"), key, json.dumps(alarm, ensure_ascii=False, sort_keys=True))
            raised = pipe.execute()[::3]
        with self.client.pipeline(transaction=False) as pipe:
            for (_key, alarm), new in zip(holding.items(), raised):
                if new:
                    self._log(pipe, now_ms, "raised", alarm)
            for name in ("since", "seen", "shown", "acks"):
                pipe.hgetall(self._k(name))
            answers = pipe.execute()
            since, seen, shown, acks = ({_text(k): _text(v) for k, v in h.items()} for h in answers[-4:])
        # The log is kept by Redis's own clock, whatever clock this process runs on. TIME is asked apart: a
        # cluster's pipeline refuses it (it names no key), and sends it alone to one node.
        server_s, server_us = self.client.time()
        self.client.xtrim(
            self._k("log"), minid=max(server_s * 1000 + server_us // 1000 - self.log_ms, 0), approximate=True
        )
        out = []
        for key, start in since.items():
            alarm = holding.get(key) or (json.loads(shown[key]) if key in shown else None)
            last = int(seen.get(key, start))
            if key not in holding and now_ms - last >= self.clear_after_ms:
                self._clear(key, alarm or {"key": key}, now_ms)
                continue
            if alarm is None:
                continue
            ack = json.loads(acks[key]) if key in acks else None
            out.append(
                alarm
                | {
                    "since_ms": int(start),
                    "state": "acknowledged" if ack else "raised",
                    "lapsed": key not in holding,
                    "ack": ack,
                }
            )
        return out

    def _clear(self, key: str, alarm: dict, now_ms: int) -> None:
        if not self.client.hdel(self._k("since"), key):
            return  # another process cleared it first, and logged it
        with self.client.pipeline(transaction=False) as pipe:
            for name in ("seen", "shown", "acks"):
                pipe.hdel(self._k(name), key)
            self._log(pipe, now_ms, "cleared", alarm)
            pipe.execute()

    def acknowledge(
        self, key: str, who: str, role: str, note: str, now_ms: int
    ) -> tuple[dict | None, dict | None, bool]:
        """Mark an alarm in force as acknowledged (once: the first acknowledgement stands). Return the alarm,
        the acknowledgement that stands and whether it is this one; (None, None, False) when no such alarm
        is in force."""
        shown = self.client.hget(self._k("shown"), key)
        if shown is None or not self.client.hexists(self._k("since"), key):
            return None, None, False
        alarm = json.loads(_text(shown))
        ack = {"by": who, "role": role, "at_ms": now_ms, "note": note.strip()[:NOTE_MAX]}
        if not self.client.hsetnx(self._k("acks"), key, json.dumps(ack, ensure_ascii=False)):
            return alarm, json.loads(_text(self.client.hget(self._k("acks"), key) or "null")), False
        with self.client.pipeline(transaction=False) as pipe:
            self._log(pipe, now_ms, "acknowledged", alarm, by=who, role=role, note=ack["note"])
            pipe.execute()
        return alarm, ack, True

    def log(self, limit: int = 10_000) -> list[dict]:
        """The log's newest ``limit`` entries, newest first."""
        out = []
        for _id, fields in self.client.xrevrange(self._k("log"), count=limit):
            row = {_text(k): _text(v) for k, v in fields.items()}
            out.append({f: row.get(f, "") for f in LOG_FIELDS})
        return out
