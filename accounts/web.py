"""citydeck's door: sign-in (local accounts with flask-login, or single sign-on through OpenID Connect),
wall tokens, the role every request needs, the sign-in rate limit and the security headers.

Every request passes ``admit`` before anything else reads it: a page needs a role, a callback needs the
capability its outputs ask for (``needs(body)``, given by the dashboard), and a wall session may open
the wall and nothing else. Roles are checked here, on the server, never by hiding components.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from flask import (
    Flask,
    abort,
    current_app,
    has_request_context,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
)
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from accounts.roles import NEEDS, may
from accounts.store import MIN_PASSWORD, Account, AccountError, Accounts, secret_key
from data.connection import is_cluster, is_loopback

log = logging.getLogger("citydeck.access")

SIGNIN, SIGNOUT, SSO_START, SSO_BACK = "/login", "/logout", "/login/sso", "/login/sso/back"
NEW_PASSWORD = "/password"
WALL = "/wall"
# What anyone may fetch: the sign-in pages, and the static files the pages are drawn with (no data in them).
OPEN_PATHS = (SIGNIN, SIGNOUT, SSO_START, SSO_BACK, "/_favicon.ico")
OPEN_PREFIXES = ("/assets/", "/_dash-component-suites/")
# What a wall session may fetch besides the wall itself: the app's machinery and the boundaries.
WALL_PREFIXES = ("/_dash-", "/_reload-hash", "/geo/")
OFF_ROLE = "operator"  # everyone's role with CITYDECK_AUTH=off
WALL_IDLE_S = 90 * 86_400  # a wall switched off this long opens its link again


class AuthOffRefused(RuntimeError):
    """CITYDECK_AUTH=off asked for while serving beyond this machine."""


def refuse_auth_off_beyond_loopback(settings, bind_host: str | None) -> None:
    """Raise ``AuthOffRefused`` when the dashboard would be open to all on an address others can reach, or in
    production at all."""
    if settings.auth == "off" and settings.environment == "production":
        raise AuthOffRefused("CITYDECK_AUTH=off is refused in production: every screen there needs a role.")
    if settings.auth == "off" and bind_host is not None and not is_loopback(bind_host):
        raise AuthOffRefused(
            f"CITYDECK_AUTH=off lets anyone who reaches the port in; it is refused when serving {bind_host}."
            " Serve 127.0.0.1 behind a proxy, or keep sign-in on."
        )


class User(UserMixin):
    """Who a request comes from: an account, or a wall display (by its token's label)."""

    def __init__(self, session_id: str, name: str, role: str, account: Account | None = None):
        self.id = session_id
        self.name = name
        self.role = role
        self.account = account

    def get_id(self) -> str:
        return self.id


class Access:
    """The door of one dashboard app."""

    def __init__(self, settings, accounts: Accounts, needs: Callable[[dict], str]):
        self.settings = settings
        self.accounts = accounts
        self.needs = needs
        self.limiter: Limiter | None = None
        self.sso = None

    @property
    def open_to_all(self) -> bool:
        return self.settings.auth == "off"


def access() -> Access:
    return current_app.extensions["citydeck.access"]


def current_role() -> str | None:
    """The role of the request being served (None: nobody signed in, and sign-in is on; or no request)."""
    if not has_request_context():
        return None
    if current_user and current_user.is_authenticated:
        return current_user.role
    return OFF_ROLE if access().open_to_all else None


def current_name() -> str:
    if current_user and current_user.is_authenticated:
        return current_user.name
    return "anonymous"


def current_session() -> str:
    """The server-side id of the signed-in browser session ('' with nobody signed in)."""
    if current_user and current_user.is_authenticated:
        return current_user.id.rsplit("|", 1)[-1]
    return ""


def current_account() -> Account | None:
    """The signed-in account (None for a wall, or with nobody signed in)."""
    if current_user and current_user.is_authenticated:
        return current_user.account
    return None


def _signed_in(door: Access, account: Account) -> None:
    """Sign a browser in as an account: a session of its own on the server, named in the signed cookie."""
    session.clear()
    session.permanent = True
    sid = door.accounts.open_session(account.name, door.settings.session_idle_h * 3600)
    login_user(User(f"a|{account.name}|{account.epoch}|{sid}", account.name, account.role, account))


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _limits_storage(settings, client) -> tuple[str, dict]:
    """Where the rate limiter counts: the city's own Redis (a cluster through its own client)."""
    if is_cluster(client):
        scheme, rest = settings.redis_url.split("://", 1)
        return "redis+cluster://" + rest, ({"ssl": True} if scheme.lower().startswith("rediss") else {})
    return "redis://", {"connection_pool": client.connection_pool}


def init_app(
    app, settings, client, accounts: Accounts, needs: Callable[[dict], str], keys, api_prefixes: tuple[str, ...] = ()
) -> Access:
    """Put the door in front of a Dash app's server.

    ``api_prefixes``: paths of machine APIs that keep their own access rule (keys, not roles).
    """
    refuse_auth_off_beyond_loopback(settings, None)
    server: Flask = app.server
    door = Access(settings, accounts, needs)
    server.extensions["citydeck.access"] = door
    if settings.proxy_hops:
        server.wsgi_app = ProxyFix(
            server.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops, x_host=settings.proxy_hops
        )
    server.secret_key = secret_key(settings)
    server.config.update(
        SESSION_COOKIE_NAME="citydeck_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(settings.cookie_secure),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_idle_h),
        SESSION_REFRESH_EACH_REQUEST=True,
    )
    manager = LoginManager()
    manager.init_app(server)
    manager.session_protection = None  # the session holds the account's epoch; a proxy's address change is no theft

    @manager.user_loader
    def load(session_id: str) -> User | None:
        kind, _, rest = session_id.partition("|")
        if kind == "a":
            name, epoch, sid = (rest.split("|") + ["", ""])[:3]
            account = accounts.in_session(name, sid, settings.session_idle_h * 3600)
            if account is None or account.disabled or str(account.epoch) != epoch:
                return None  # signed out, idle too long, or its password, role or state changed
            return User(session_id, account.name, account.role, account)
        if kind == "w":
            label, digest, sid = (rest.split("|") + ["", ""])[:3]
            if sid and accounts.wall_in_session(label, digest, sid, WALL_IDLE_S):
                return User(session_id, f"wall:{label}", "wall")
        return None

    storage_uri, storage_options = _limits_storage(settings, client)
    door.limiter = Limiter(
        get_remote_address,
        app=server,
        storage_uri=storage_uri,
        storage_options=storage_options,
        key_prefix=keys.limits(),
        strategy="moving-window",
        headers_enabled=True,
    )
    _sso(server, door)
    _routes(server, door)
    _gate(app, server, door, api_prefixes)
    _headers(app, server, settings)
    return door


# ---------------------------------------------------------------------------- sign-in pages

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>citydeck · sign in</title><link rel="stylesheet" href="/assets/citydeck.css"></head>
<body class="signin-body"><main class="signin">
<h1><span class="brand-name">citydeck</span> <span class="brand-sub">city command center</span></h1>
{% if message %}<p class="signin-message" role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="next" value="{{ next }}">
<label>Account <input name="name" autocomplete="username" required autofocus value="{{ name }}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
{% if sso %}<p><a class="signin-sso" href="/login/sso?{{ sso_query }}">Sign in with your organisation</a></p>{% endif %}
</main></body></html>"""


def _signin_page(door: Access, message: str = "", name: str = "", status: int = 200):
    target = _safe_next(request.values.get("next"))
    html = render_template_string(
        PAGE,
        message=message,
        csrf=_csrf_token(),
        next=target,
        name=name,
        sso=door.sso is not None,
        sso_query=urlencode({"next": target}),
    )
    return html, status


NEW_PASSWORD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>citydeck · your password</title><link rel="stylesheet" href="/assets/citydeck.css"></head>
<body class="signin-body"><main class="signin">
<h1><span class="brand-name">citydeck</span> <span class="brand-sub">{{ why }}</span></h1>
{% if message %}<p class="signin-message" role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/password">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="next" value="{{ next }}">
<input type="hidden" name="name" value="{{ name }}" autocomplete="username">
<label>Current password <input name="current" type="password" autocomplete="current-password" required></label>
<label>New password ({{ least }} characters or more)
<input name="new" type="password" autocomplete="new-password" minlength="{{ least }}" required></label>
<label>New password again <input name="again" type="password" autocomplete="new-password" required></label>
<button type="submit">Set my password</button>
</form>
<p><a class="signin-sso" href="/logout">Sign out</a></p>
</main></body></html>"""


def _new_password_page(account: Account, message: str = "", status: int = 200):
    why = "choose your own password" if account.must_change else "change your password"
    html = render_template_string(
        NEW_PASSWORD_PAGE, why=why, message=message, csrf=_csrf_token(), name=account.name,
        next=_safe_next(request.values.get("next")), least=MIN_PASSWORD,
    )  # fmt: skip
    return html, status


def _signin_failed(response) -> bool:
    """Only a refused name and password counts against the limits (401): not a success, and not a form that
    never reached the check (an expired or forged form, a missing field)."""
    return response.status_code == 401


def _account_key() -> str:
    return "account:" + str(request.form.get("name", "")).strip().lower()[:64]


def _routes(server: Flask, door: Access) -> None:
    settings, accounts = door.settings, door.accounts
    limit_account = door.limiter.limit(
        settings.signin_limit_account, key_func=_account_key, methods=["POST"], deduct_when=_signin_failed,
        scope="signin-account",
    )  # fmt: skip
    limit_address = door.limiter.limit(
        settings.signin_limit_address, methods=["POST"], deduct_when=_signin_failed, scope="signin-address"
    )

    @server.route(SIGNIN, methods=["GET", "POST"])
    @limit_address
    @limit_account
    def signin():
        if request.method == "GET":
            return _signin_page(door)
        if not hmac.compare_digest(str(request.form.get("csrf", "")), _csrf_token()):
            return _signin_page(door, "The form had expired: please sign in again.", status=400)
        name = str(request.form.get("name", "")).strip().lower()
        account = accounts.check(name, str(request.form.get("password", "")))
        if account is None:
            log.warning("sign-in refused for %r from %s", name[:64], get_remote_address())
            return _signin_page(door, "That account name and password do not match an enabled account.", name, 401)
        _signed_in(door, account)
        accounts.audit.append(account.name, account.role, "signin", address=get_remote_address(), via="password")
        target = _safe_next(request.form.get("next"))
        if account.must_change:
            return redirect(f"{NEW_PASSWORD}?{urlencode({'next': target})}", 302)
        return redirect(target, 302)

    @server.route(NEW_PASSWORD, methods=["GET", "POST"])
    @limit_address
    def new_password():
        account = current_account()
        if account is None or account.source != "local":
            return redirect(SIGNIN, 302)
        if request.method == "GET":
            return _new_password_page(account)
        if not hmac.compare_digest(str(request.form.get("csrf", "")), _csrf_token()):
            return _new_password_page(account, "The form had expired: please try again.", 400)
        if accounts.check(account.name, str(request.form.get("current", ""))) is None:
            return _new_password_page(account, "The current password is not right.", 401)
        new, again = str(request.form.get("new", "")), str(request.form.get("again", ""))
        if new != again:
            return _new_password_page(account, "The two new passwords differ.", 400)
        if hmac.compare_digest(new, str(request.form.get("current", ""))):
            return _new_password_page(account, "Choose a password other than the one you were given.", 400)
        try:
            accounts.passwd(account.name, new, by=account.name, by_role=account.role)
        except AccountError as e:
            return _new_password_page(account, str(e).capitalize() + ".", 400)
        # The change ends every session of the account, this one too: it goes on in a new one.
        accounts.end_precise(account, current_session())
        accounts.close_session(current_session())
        _signed_in(door, accounts.get(account.name))
        return redirect(_safe_next(request.form.get("next")), 302)

    @server.route(SIGNOUT)
    def signout():
        if current_user.is_authenticated:
            account = current_account()
            if account is not None:
                accounts.end_precise(account, current_session())
                accounts.audit.append(account.name, account.role, "signout")
            accounts.close_session(current_session())  # a wall's too: its cookie opens nothing after this
            logout_user()
        session.clear()
        return redirect(SIGNIN, 302)

    @server.errorhandler(RateLimitExceeded)
    def too_many(error):
        log.warning("sign-in rate limit reached from %s: %s", get_remote_address(), error.description)
        if request.path == SIGNIN:
            return _signin_page(door, f"Too many failed sign-ins ({error.description}): wait and try again.",
                                str(request.form.get("name", ""))[:64], 429)  # fmt: skip
        return jsonify(error="too many requests"), 429


def _sso(server: Flask, door: Access) -> None:
    """Single sign-on through an OpenID Connect provider, when one is configured."""
    settings = door.settings
    if not settings.oidc_issuer:
        return
    from accounts.sso import SingleSignOn

    door.sso = SingleSignOn(server, settings, door.accounts)

    @server.route(SSO_START)
    def sso_start():
        session["next"] = _safe_next(request.args.get("next"))
        return door.sso.start()

    @server.route(SSO_BACK)
    def sso_back():
        step = door.sso.same_site_step()
        if step is not None:
            return step
        account, why = door.sso.finish()
        if account is None:
            return _signin_page(door, why, status=403)
        target = _safe_next(session.get("next"))
        _signed_in(door, account)
        door.accounts.audit.append(account.name, account.role, "signin", address=get_remote_address(), via="sso")
        return redirect(target, 302)


# ---------------------------------------------------------------------------- every request


def _wall_token_signin(door: Access):
    """Turn ``/wall?token=…`` into a wall session and drop the token from the address bar."""
    token = request.args.get("token", "")
    record = door.accounts.wall_token(token)
    if record is None:
        log.warning("refused a wall token from %s", get_remote_address())
        return _signin_page(door, "That wall link is not valid (revoked, or mistyped).", status=403)
    session.clear()
    session.permanent = True
    sid = door.accounts.open_session(f"wall:{record.label}", WALL_IDLE_S)
    login_user(User(f"w|{record.label}|{door.accounts.token_digest(token)}|{sid}", f"wall:{record.label}", "wall"))
    rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"], safe=",")
    return redirect(WALL + (f"?{rest}" if rest else ""), 302)


def _gate(app, server: Flask, door: Access, api_prefixes: tuple[str, ...]) -> None:
    update = app.config.routes_pathname_prefix + "_dash-update-component"

    @server.before_request
    def admit():
        path = request.path
        if door.open_to_all and not is_loopback(request.remote_addr or ""):
            # With sign-in off the dashboard answers this machine alone, whatever address a server binds.
            return jsonify(error="sign-in is off: this dashboard answers only this machine"), 403
        # By the route that answers, not the path alone: a path under a static prefix that no static route
        # matches falls to Dash's page route, and that needs a role.
        rule = request.url_rule.rule if request.url_rule is not None else ""
        if path in OPEN_PATHS or (path.startswith(OPEN_PREFIXES) and rule.startswith(OPEN_PREFIXES)):
            return None
        if api_prefixes and path.startswith(api_prefixes) and rule.startswith(api_prefixes):
            return None  # an API's own rule applies: public reads with no personal data, keyed posts
        if path.rstrip("/") == WALL and "token" in request.args:
            return _wall_token_signin(door)
        role = current_role()
        if role is None:
            if path.startswith(("/_dash-", "/_reload-hash", "/geo/")):
                return jsonify(error="sign in first"), 401
            return redirect(f"{SIGNIN}?{urlencode({'next': request.full_path.rstrip('?')})}", 302)
        if role == "wall" and not (path.rstrip("/") == WALL or path.startswith(WALL_PREFIXES)):
            return redirect(WALL, 302)
        account = current_account()
        if account is not None and account.must_change and path != NEW_PASSWORD:
            # A one-time password opens one page: the one that replaces it.
            if path.startswith(("/_dash-", "/_reload-hash", "/geo/")):
                return jsonify(error="choose your own password first"), 403
            return redirect(f"{NEW_PASSWORD}?{urlencode({'next': request.full_path.rstrip('?')})}", 302)
        if path == update and request.method == "POST":
            try:
                body = request.get_json(silent=True)
            except (RecursionError, RequestEntityTooLarge):
                return None  # malformed: the callback guard, next, refuses it with its reason
            capability = door.needs(body) if isinstance(body, dict) else "aggregates"
            if not may(role, capability):
                log.warning("refused %s to %s (%s): needs %s", path, current_name(), role, NEEDS[capability])
                abort(403, description=f"this needs the {NEEDS[capability]} role")
        return None


# ---------------------------------------------------------------------------- headers


def content_security_policy(app, settings) -> str:
    """A policy Dash and Plotly's maps work under: scripts from here (Dash's inline start-up by its hash),
    map workers from blobs, styles inline (Plotly sets them), no frames, no plugins."""
    script = " ".join(["'self'", *app.csp_hashes()])
    remote = " https:" if settings.map_style else ""  # tiles and glyphs of a configured base map
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {script}",
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: blob:{remote}",
            f"connect-src 'self'{remote}",
            f"font-src 'self' data:{remote}",
            "worker-src 'self' blob:",
            "child-src blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _headers(app, server: Flask, settings) -> None:
    policy: list[str] = []

    @server.after_request
    def secure(response):
        if not policy:  # Dash's inline scripts are known once the app is set up, at the first request
            policy.append(content_security_policy(app, settings))
        h = response.headers
        h.setdefault("Content-Security-Policy", policy[0])
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/_dash-update-component") or request.path == SIGNIN:
            h["Cache-Control"] = "no-store"  # figures and names must not sit in a shared cache
        return response
