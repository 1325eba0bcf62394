"""``python -m accounts``: manage accounts, wall tokens and the audit log of the city in REDIS_URL.

python -m accounts add NAME --role ROLE       create an account; prints a new password
python -m accounts passwd NAME                set a new password (read from stdin, or a new one printed)
python -m accounts role NAME ROLE             change an account's role
python -m accounts disable NAME | enable NAME
python -m accounts list
python -m accounts wall create LABEL          create a wall display token; prints the /wall link
python -m accounts wall revoke LABEL
python -m accounts wall list
python -m accounts audit verify               check the audit chain; exit 1 where it breaks
python -m accounts audit export [FILE]        write the audit log as CSV (default: standard output)
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence

from accounts.roles import ACCOUNT_ROLES, ROLE_TITLES, UnknownRole
from accounts.store import AccountError, Accounts, new_password
from data.connection import connect
from settings import Settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m accounts", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="; ".join(f"{r}: {ROLE_TITLES[r]}" for r in ACCOUNT_ROLES))
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd = sub.add_parser("passwd", help="set a new password; the account's sessions end")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    role = sub.add_parser("role", help="change an account's role; its sessions end")
    role.add_argument("name")
    role.add_argument("role", help=", ".join(ACCOUNT_ROLES))
    for name in ("disable", "enable"):
        sub.add_parser(name, help=f"{name} an account").add_argument("name")
    sub.add_parser("list", help="list the accounts")
    wall = sub.add_parser("wall", help="wall display tokens")
    wall_sub = wall.add_subparsers(dest="wall_command", required=True)
    create = wall_sub.add_parser("create", help="create a token; prints the link")
    create.add_argument("label")
    create.add_argument("--url", default="http://127.0.0.1:8050", help="the dashboard's address, for the link")
    wall_sub.add_parser("revoke", help="revoke a token; its walls stop within one refresh").add_argument("label")
    wall_sub.add_parser("list", help="list the tokens (labels, never the tokens)")
    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain and say where it breaks")
    audit_sub.add_parser("export", help="write the log as CSV").add_argument("file", nargs="?", default="-")
    return parser.parse_args(argv)


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password to set and whether it was made here (and must be printed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("new password (empty: make one): ")
        if first:
            if getpass.getpass("again: ") != first:
                raise AccountError("the two passwords differ")
            return first, False
    return new_password(), True


def run(args: argparse.Namespace, accounts: Accounts, out=sys.stdout) -> int:
    by = f"cli:{getpass.getuser()}"
    if args.command == "add":
        password, made = _password(args.password_stdin)
        account = accounts.add(args.name, args.role, password, by, must_change=made)
        print(f"added {account.name} ({account.role})", file=out)
        if made:
            print(f"password: {password}   (one-time: the first sign-in sets a new one)", file=out)
    elif args.command == "passwd":
        password, made = _password(args.password_stdin)
        accounts.passwd(args.name, password, by, must_change=made)
        print(f"new password set for {args.name}" + (f": {password}   (one-time)" if made else ""), file=out)
    elif args.command == "role":
        accounts.set_role(args.name, args.role, by)
        print(f"{args.name} is now {args.role}", file=out)
    elif args.command in ("disable", "enable"):
        getattr(accounts, args.command)(args.name, by)
        print(f"{args.name} {args.command}d", file=out)
    elif args.command == "list":
        for a in accounts.list():
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(a.created_ms / 1000))
            state = "disabled" if a.disabled else "enabled"
            print(f"{a.name:24} {a.role:9} {state:9} {a.source:6} created {created}", file=out)
    elif args.command == "wall":
        if args.wall_command == "create":
            token = accounts.create_wall_token(args.label, by)
            print(f"wall token {args.label}: {args.url.rstrip('/')}/wall?token={token}", file=out)
        elif args.wall_command == "revoke":
            accounts.revoke_wall_token(args.label, by)
            print(f"wall token {args.label} revoked", file=out)
        else:
            for t in accounts.wall_tokens():
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created_ms / 1000))
                print(f"{t.label:24} created {created} by {t.by}", file=out)
    elif args.command == "audit":
        if args.audit_command == "verify":
            verdict = accounts.audit.verify()
            print(verdict.sentence(), file=out)
            return 0 if verdict.ok else 1
        if args.file == "-":
            n = accounts.audit.export_csv(out)
        else:
            with open(args.file, "w", newline="", encoding="utf-8") as f:
                n = accounts.audit.export_csv(f)
            print(f"{n:,} entries written to {args.file}", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    client, embedded = connect(settings)
    try:
        return run(args, Accounts.of(settings, client))
    except (AccountError, UnknownRole) as e:
        print(f"python -m accounts: error: {e}", file=sys.stderr)
        return 2
    finally:
        client.close()
        if embedded is not None and embedded.owner:
            embedded.stop()


if __name__ == "__main__":
    raise SystemExit(main())
