"""The alarms' state and log, shared by every screen and every dashboard process.

Each tick the conditions that hold (crowding, a case cluster, an urgent-complaint surge, a service center
over its wait target) are folded in here once. An alarm is *raised* when its condition first holds,
*acknowledged* when an operator says they are on it, and *cleared* once its condition has stayed false for
``alarm_clear_after_s``: that hold is the hysteresis that keeps an alarm from flapping at its threshold.
Every change is appended to a log stream kept ``alarm_log_days``.

The writes are safe with several processes at once, and with a process killed at any point: a raise is an
HSETNX of its start, an acknowledgement an HSETNX of it and a clear an HDEL of the start, each in one script
with its log entry (and a clear with the rest of the alarm's state), so each happens and is logged once,
or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from data.keys import Keys

STATES = ("raised", "acknowledged")
# Each alarm holding now: its start set if it has none (a raise, logged), its last sighting and how it is
# shown. KEYS: since, seen, shown, log; ARGV: now, then per alarm its key, shown JSON and log entry (a JSON
# list of field, value). Returns, per alarm, 1 where it was raised by this call.
RAISE_SCRIPT = """
local raised = {}
for i = 2, #ARGV, 3 do
  local key = ARGV[i]
  local new = redis.call('HSETNX', KEYS[1], key, ARGV[1])
  redis.call('HSET', KEYS[2], key, ARGV[1])
  redis.call('HSET', KEYS[3], key, ARGV[i + 1])
  if new == 1 then redis.call('XADD', KEYS[4], '*', unpack(cjson.decode(ARGV[i + 2]))) end
  raised[#raised + 1] = new
end
return raised
"""
# An acknowledgement, the first one only, of an alarm in force, with its log entry. KEYS: since, acks, log;
# ARGV: the alarm's key, the acknowledgement JSON, the log entry. Returns 1 when made here, 0 when one stands
# already, -1 when the alarm is not in force (cleared meanwhile: an acknowledgement would outlive it).
ACK_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[3], '*', unpack(cjson.decode(ARGV[3])))
return 1
"""
# A clear, once, with all the alarm was and its log entry. KEYS: since, seen, shown, acks, log; ARGV: the
# alarm's key, the log entry. Returns 1 when cleared here.
CLEAR_SCRIPT = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
for k = 2, 4 do redis.call('HDEL', KEYS[k], ARGV[1]) end
redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[2])))
return 1
"""
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
        self._raise = client.register_script(RAISE_SCRIPT)
        self._ack = client.register_script(ACK_SCRIPT)
        self._clear_once = client.register_script(CLEAR_SCRIPT)

    def _k(self, name: str) -> str:
        return self.keys.alarms(name)

    @staticmethod
    def _entry(at_ms: int, event: str, alarm: dict, **more: str) -> str:
        """A log entry as the scripts take it: a JSON list of field, value."""
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
        return json.dumps([x for pair in entry.items() for x in pair], ensure_ascii=False)

    def track(self, holding: Iterable[dict], now_ms: int) -> list[dict]:
        """Fold the conditions that hold now into the alarms' state; return every alarm in force (raised or
        acknowledged, including one whose condition lapsed less than the hold ago), each with ``since_ms``,
        ``state``, ``lapsed`` and, once acknowledged, ``ack`` ({by, role, at_ms, note})."""
        holding = {a["key"]: a for a in holding}
        if holding:
            args: list[str | int] = [now_ms]
            for key, alarm in holding.items():
                args += [
                    key,
                    json.dumps(alarm, ensure_ascii=False, sort_keys=True),
                    self._entry(now_ms, "raised", alarm),
                ]
            self._raise(keys=[self._k(n) for n in ("since", "seen", "shown", "log")], args=args)
        with self.client.pipeline(transaction=False) as pipe:
            for name in ("since", "seen", "shown", "acks"):
                pipe.hgetall(self._k(name))
            since, seen, shown, acks = ({_text(k): _text(v) for k, v in h.items()} for h in pipe.execute())
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
        """Clear an alarm with all it was (sightings, how it is shown, its acknowledgement), logged; once, if
        another process clears it too."""
        names = ("since", "seen", "shown", "acks", "log")
        self._clear_once(keys=[self._k(n) for n in names], args=[key, self._entry(now_ms, "cleared", alarm)])

    def acknowledge(
        self, key: str, who: str, role: str, note: str, now_ms: int
    ) -> tuple[dict | None, dict | None, bool]:
        """Mark an alarm in force as acknowledged (once: the first acknowledgement stands). Return the alarm,
        the acknowledgement that stands and whether it is this one; (None, None, False) when no such alarm
        is in force."""
        shown = self.client.hget(self._k("shown"), key)
        if shown is None:
            return None, None, False
        alarm = json.loads(_text(shown))
        ack = {"by": who, "role": role, "at_ms": now_ms, "note": note.strip()[:NOTE_MAX]}
        entry = self._entry(now_ms, "acknowledged", alarm, by=who, role=role, note=ack["note"])
        made = self._ack(
            keys=[self._k(n) for n in ("since", "acks", "log")], args=[key, json.dumps(ack, ensure_ascii=False), entry]
        )
        if made == -1:
            return None, None, False
        if not made:
            return alarm, json.loads(_text(self.client.hget(self._k("acks"), key) or "null")), False
        return alarm, ack, True

    def log(self, limit: int = 10_000) -> list[dict]:
        """The log's newest ``limit`` entries, newest first."""
        out = []
        for _id, fields in self.client.xrevrange(self._k("log"), count=limit):
            row = {_text(k): _text(v) for k, v in fields.items()}
            out.append({f: row.get(f, "") for f in LOG_FIELDS})
        return out
