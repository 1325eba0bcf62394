"""Accounts, wall display tokens and grants of the precise health view, kept in Redis under the city's
key prefix; every change is written to the audit log in the same step.

Passwords are hashed with Argon2id (argon2-cffi's defaults); a wall token is stored only as its
SHA-256, so reading Redis gives no way in. An account's ``epoch`` goes up whenever its password, role
or state changes: sessions remember the epoch they began in, and end when it moves.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accounts.audit import Audit
from accounts.roles import checked
from data.keys import Keys

NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte of password is work an attacker would happily hand us
TOKEN_PREFIX = "cdw_"
_hasher = PasswordHasher()
# Checked against when the account does not exist, so an unknown name costs the same time as a known one.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


class SecretMissing(RuntimeError):
    """No CITYDECK_SECRET_KEY in production."""


def secret_key(settings) -> str:
    """The key that signs sessions: from the environment, or (in the demo only) one kept in the state folder."""
    if settings.secret_key:
        return settings.secret_key
    if settings.environment == "production":
        raise SecretMissing("CITYDECK_SECRET_KEY is not set: production sessions need a key from the environment")
    path = Path(settings.state_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="ascii") as f:  # the first process makes it; the others read it
            f.write(secrets.token_urlsafe(48))
        path.chmod(0o600)
    except FileExistsError:
        pass
    return path.read_text(encoding="ascii").strip()


def audit_key(settings) -> bytes:
    """The key of the audit chain: CITYDECK_AUDIT_KEY, else one derived from the session key (never the same)."""
    if settings.audit_key:
        return settings.audit_key.encode()
    return hmac.new(secret_key(settings).encode(), b"citydeck audit chain", hashlib.sha256).digest()


class AccountError(ValueError):
    """An account operation that cannot be done, with the reason in words."""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def valid_name(name: str) -> str:
    """Return the account name if it can be one (lower case letters, digits and ._@-), else raise."""
    if not isinstance(name, str) or not NAME.match(name):
        raise AccountError(
            f"{name!r} cannot be an account name: 1 to 64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit"
        )
    return name


def new_password() -> str:
    """A random password good for a first sign-in (about 120 bits)."""
    return secrets.token_urlsafe(15)


def _checked_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True)
class Account:
    """One account as stored (never with its password hash)."""

    name: str
    role: str
    disabled: bool
    epoch: int
    created_ms: int
    source: str  # 'local' (a password here) or 'sso' (signed in through the identity provider)
    must_change: bool = False  # its password was given to it (one-time): the first sign-in sets its own


@dataclass(frozen=True)
class WallToken:
    label: str
    created_ms: int
    by: str


@dataclass(frozen=True)
class Grant:
    """A health officer's grant of the precise view: why, since when, until when."""

    name: str
    reason: str
    since_ms: int
    until_ms: int


# Mark a look on the grant it was made under, if that grant still stands (the same one: its start), so a
# refresh that read the grant just before it was closed cannot mark, nor audit, a look after its end.
# Returns 1 when marked here, 0 when marked before, -1 when the grant is gone.
MARK_LOOK_SCRIPT = """
if redis.call('HGET', KEYS[1], 'since_ms') ~= ARGV[2] then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[1], 1)
"""


class Accounts:
    """Accounts, wall tokens and precise-view grants of one city, with every change audited."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: Audit, clock=time.time):
        self.client = client
        self.keys = keys
        self.clock = clock
        self.audit = audit

    @classmethod
    def of(cls, settings, client: redis.Redis, clock=time.time) -> Accounts:
        """The accounts of the city in these settings, their audit chained with its key."""
        keys = Keys(settings.key_prefix)
        return cls(client, keys, Audit(client, keys, audit_key(settings), clock), clock)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ accounts

    def get(self, name: str) -> Account | None:
        if not isinstance(name, str) or not NAME.match(name):
            return None
        return self._account(name, self.client.hgetall(self.keys.account(name)))

    @staticmethod
    def _account(name: str, raw: dict) -> Account | None:
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        return Account(
            name, f.get("role", ""), f.get("disabled") == "1", int(f.get("epoch", 0)), int(f.get("created_ms", 0)),
            f.get("source", "local"), f.get("must_change") == "1",
        )  # fmt: skip

    def names(self) -> list[str]:
        return sorted(_text(n) for n in self.client.smembers(self.keys.accounts()))

    def list(self) -> list[Account]:
        return [a for a in (self.get(n) for n in self.names()) if a is not None]

    def add(
        self, name: str, role: str, password: str, by: str, by_role: str = "admin", must_change: bool = False
    ) -> Account:
        """Create a local account; raise ``AccountError`` if the name is taken or anything is invalid.
        ``must_change``: the password is a one-time one, replaced at the first sign-in."""
        valid_name(name)
        checked(role)
        digest = _hasher.hash(_checked_password(password))
        created = self.client.hsetnx(self.keys.account(name), "hash", digest)
        if not created:
            raise AccountError(f"an account {name!r} exists already")
        self.client.hset(
            self.keys.account(name),
            mapping={
                "role": role, "disabled": 0, "epoch": 1, "created_ms": self._now_ms(), "source": "local",
                "must_change": int(must_change),
            },
        )  # fmt: skip
        self.client.sadd(self.keys.accounts(), name)
        self.audit.append(by, by_role, "account.add", account=name, role=role)
        return self.get(name)

    def _existing(self, name: str) -> Account:
        account = self.get(name)
        if account is None:
            raise AccountError(f"there is no account {name!r}")
        return account

    def passwd(self, name: str, password: str, by: str, by_role: str = "admin", must_change: bool = False) -> None:
        """Set a new password (``must_change``: a one-time one); the account's open sessions end."""
        self._existing(name)
        digest = _hasher.hash(_checked_password(password))
        fields = {"hash": digest, "source": "local", "must_change": int(must_change)}
        self._change(name, fields, by, by_role, "account.passwd")

    def set_role(self, name: str, role: str, by: str, by_role: str = "admin") -> None:
        self._existing(name)
        self._change(name, {"role": checked(role)}, by, by_role, "account.role", role=role)

    def disable(self, name: str, by: str, by_role: str = "admin") -> None:
        """Stop an account from signing in; its open sessions end at their next request."""
        self._existing(name)
        self._change(name, {"disabled": 1}, by, by_role, "account.disable")

    def enable(self, name: str, by: str, by_role: str = "admin") -> None:
        self._existing(name)
        self._change(name, {"disabled": 0}, by, by_role, "account.enable")

    def _change(self, name: str, fields: dict, by: str, by_role: str, action: str, **detail) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.account(name), mapping=fields)
        pipe.hincrby(self.keys.account(name), "epoch", 1)
        pipe.execute()
        self.audit.append(by, by_role, action, account=name, **detail)

    def check(self, name: str, password: str) -> Account | None:
        """The account if the name and password are right and it is enabled, else None (in about equal time)."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        account = self.get(name) if isinstance(name, str) else None
        stored = self.client.hget(self.keys.account(name), "hash") if account else None
        try:
            _hasher.verify(_text(stored) if stored else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.disabled or account.source != "local":
            return None
        if _hasher.check_needs_rehash(_text(stored)):
            self.client.hset(self.keys.account(name), "hash", _hasher.hash(password))
        return account

    def signed_in_through_sso(self, name: str, role: str) -> Account:
        """The account of someone the identity provider vouched for, created or brought to the role it gave."""
        valid_name(name)
        checked(role)
        account = self.get(name)
        if account is None:
            self.client.hset(
                self.keys.account(name),
                mapping={"role": role, "disabled": 0, "epoch": 1, "created_ms": self._now_ms(), "source": "sso"},
            )
            self.client.sadd(self.keys.accounts(), name)
            self.audit.append("sso", "admin", "account.add", account=name, role=role, source="sso")
        elif account.role != role and account.source == "sso":
            self._change(name, {"role": role}, "sso", "admin", "account.role", role=role)
        return self.get(name)

    # ------------------------------------------------------------------ sessions

    def open_session(self, holder: str, idle_s: float) -> str:
        """Start a browser session of an account (or a wall, ``wall:<label>``); return its id (kept in the
        signed cookie)."""
        sid = secrets.token_urlsafe(18)
        self.client.set(self.keys.session(sid), holder, px=max(int(idle_s * 1000), 1))
        return sid

    def in_session(self, name: str, sid: str, idle_s: float) -> Account | None:
        """The account if its session is still open (and keep it open ``idle_s`` more), else None.

        A session ends at sign-out on the server, not only in the browser: a refresh that was on its way
        when the browser signed out cannot bring it back by setting the old cookie again.
        """
        if not NAME.match(name) or not sid:
            return None
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.account(name))
        pipe.getex(self.keys.session(sid), px=max(int(idle_s * 1000), 1))
        raw, holder = pipe.execute()
        if holder is None or _text(holder) != name:
            return None
        return self._account(name, raw)

    def close_session(self, sid: str) -> None:
        self.client.delete(self.keys.session(sid))

    # ------------------------------------------------------------------ wall tokens

    @staticmethod
    def token_digest(token: str) -> str:
        """The SHA-256 of a token, as stored."""
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def create_wall_token(self, label: str, by: str, by_role: str = "admin") -> str:
        """Create a wall display token under a label and return it (it is shown once and never stored)."""
        valid_name(label)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = self.token_digest(token)
        if not self.client.hsetnx(self.keys.wall_tokens(), label, digest):
            raise AccountError(f"a wall token labelled {label!r} exists already: revoke it first")
        self.client.hset(self.keys.wall_token(digest), mapping={"label": label, "created_ms": self._now_ms(), "by": by})
        self.audit.append(by, by_role, "wall.create", label=label)
        return token

    def wall_token(self, token: str) -> WallToken | None:
        """The wall token's record if the token is valid now, else None."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        raw = self.client.hgetall(self.keys.wall_token(self.token_digest(token)))
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        return WallToken(f["label"], int(f["created_ms"]), f.get("by", ""))

    def wall_in_session(self, label: str, digest: str, sid: str, idle_s: float) -> bool:
        """Whether a wall's session begun with this token (label and digest) may go on: the token is still
        the label's and the session was not ended (kept open ``idle_s`` more)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.wall_tokens(), label)
        pipe.getex(self.keys.session(sid), px=max(int(idle_s * 1000), 1))
        current, holder = pipe.execute()
        return (
            current is not None and _text(current) == digest and holder is not None and _text(holder) == f"wall:{label}"
        )

    def revoke_wall_token(self, label: str, by: str, by_role: str = "admin") -> None:
        digest = self.client.hget(self.keys.wall_tokens(), label)
        if digest is None:
            raise AccountError(f"there is no wall token labelled {label!r}")
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.wall_token(_text(digest)))
        pipe.hdel(self.keys.wall_tokens(), label)
        pipe.execute()
        self.audit.append(by, by_role, "wall.revoke", label=label)

    def wall_tokens(self) -> list[WallToken]:
        out = []
        for _label, digest in sorted(self.client.hgetall(self.keys.wall_tokens()).items()):
            raw = self.client.hgetall(self.keys.wall_token(_text(digest)))
            if raw:
                f = {_text(k): _text(v) for k, v in raw.items()}
                out.append(WallToken(f["label"], int(f["created_ms"]), f.get("by", "")))
        return out

    # ------------------------------------------------------------------ precise-view grants

    def grant_precise(self, account: Account, session: str, reason: str, seconds: float, scope: str) -> Grant:
        """Open the precise health view to one session of an account for ``seconds``, for the reason given;
        audited. Another session, or this one after sign-out, must ask again."""
        now = self._now_ms()
        until = now + int(seconds * 1000)
        key = self.keys.grant(session)
        standing = self.precise_grant(account, session)
        if standing is not None:  # asked again while open: the grant it replaces ends here, and says so
            self.audit.append(account.name, account.role, "precise.end", reason=standing.reason,
                              since_ms=standing.since_ms, replaced=True)  # fmt: skip
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"name": account.name, "reason": reason, "since_ms": now, "until_ms": until})
        pipe.pexpire(key, max(until - now, 1))
        pipe.execute()
        self.audit.append(account.name, account.role, "precise.grant", reason=reason, scope=scope, until_ms=until)
        return Grant(account.name, reason, now, until)

    def precise_grant(self, account: Account, session: str) -> Grant | None:
        """The session's grant of the precise view if one is running now (and is the account's)."""
        raw = self.client.hgetall(self.keys.grant(session)) if session else {}
        f = {_text(k): _text(v) for k, v in raw.items()}
        if "until_ms" not in f or f.get("name") != account.name:  # none, or a 'seen' mark left as it expired
            return None
        grant = Grant(account.name, f["reason"], int(f["since_ms"]), int(f["until_ms"]))
        return grant if grant.until_ms > self._now_ms() else None

    def end_precise(self, account: Account, session: str) -> None:
        grant = self.precise_grant(account, session) if session else None
        if grant is not None and self.client.delete(self.keys.grant(session)):
            self.audit.append(account.name, account.role, "precise.end", reason=grant.reason, since_ms=grant.since_ms)

    def saw_precise(self, account: Account, session: str, grant: Grant, view: str, scope: str, window: str) -> bool:
        """Audit a look at precise health data: once per grant, view, area and window (not every refresh).
        False, and nothing marked or audited, when the grant ended since it was read (closed, signed out or
        expired): the look must not be shown then."""
        marked = self.client.register_script(MARK_LOOK_SCRIPT)(
            keys=[self.keys.grant(session)], args=[f"seen:{view}:{scope}:{window}", grant.since_ms]
        )
        if marked == -1:
            return False
        if marked == 1:
            self.audit.append(
                account.name, account.role, "precise.view", view=view, scope=scope, window=window,
                reason=grant.reason, since_ms=grant.since_ms,
            )  # fmt: skip
        return True
