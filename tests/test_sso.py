"""Single sign-on against a real OpenID Connect provider served on loopback by the test: discovery, the
authorization code flow with a signed ID token, groups mapped to roles, and refusals."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from accounts.sso import account_name, role_map, role_of
from settings import SettingsError

CLIENT_ID, CLIENT_SECRET = "citydeck", "s3cret-of-the-client"


class Provider:
    """A small OpenID Connect provider: whoever is 'signed in' at it (``user``) is vouched for at once."""

    def __init__(self):
        self.kid = "k1"
        self.key = RSAKey.generate_key(2048, parameters={"kid": self.kid, "alg": "RS256", "use": "sig"})
        self.user = {"sub": "u-1", "preferred_username": "ana.lopez", "groups": ["managers", "epi"]}
        self.codes: dict[str, dict] = {}
        self.app = Flask("provider")
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._routes()

    def _routes(self):
        app = self.app

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.url,
                authorization_endpoint=f"{self.url}/authorize",
                token_endpoint=f"{self.url}/token",
                jwks_uri=f"{self.url}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            )

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize():
            args = request.args
            assert args["client_id"] == CLIENT_ID and args["response_type"] == "code"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": args.get("nonce"), "redirect_uri": args["redirect_uri"], **self.user}
            return redirect(f"{args['redirect_uri']}?{urlencode({'code': code, 'state': args['state']})}")

        @app.post("/token")
        def token():
            auth = request.authorization
            given = (
                (auth.username, auth.password)
                if auth
                else (request.form.get("client_id"), request.form.get("client_secret"))
            )
            if given != (CLIENT_ID, CLIENT_SECRET):
                return jsonify(error="invalid_client"), 401
            grant = self.codes.pop(request.form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != request.form.get("redirect_uri"):
                return jsonify(error="invalid_grant"), 400
            now = int(time.time())
            claims = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant.pop("nonce"),
                      **{k: v for k, v in grant.items() if k != "redirect_uri"}}  # fmt: skip
            id_token = jwt.encode({"alg": "RS256", "kid": self.kid}, claims, self.key)
            return jsonify(
                access_token=secrets.token_urlsafe(16), token_type="Bearer", expires_in=300, id_token=id_token
            )

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self.server.shutdown()


@pytest.fixture
def provider():
    with Provider() as p:
        yield p


@pytest.fixture
def sso_app(settings, provider):
    from app import create_app

    return create_app(
        replace(
            settings,
            auth="on",
            secret_key="x" * 48,
            oidc_issuer=provider.url,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_roles="city-it=admin, epi=health, managers=viewer",
        )
    )


def _through_provider(app, start: str = "/login/sso?next=/cases"):
    """A browser sent to the provider and back; return its client and citydeck's last answer."""
    browser = app.server.test_client()
    to_provider = browser.get(start)
    assert to_provider.status_code == 302, to_provider.get_data(as_text=True)[:300]
    back = requests.get(to_provider.headers["Location"], allow_redirects=False, timeout=30)
    assert back.status_code == 302
    url = urlsplit(back.headers["Location"])
    return browser, browser.get(f"{url.path}?{url.query}")


@pytest.mark.redis
def test_a_provider_s_user_signs_in_with_the_highest_role_of_their_groups(sso_app, settings):
    assert "Sign in with your organisation" in sso_app.server.test_client().get("/login").get_data(as_text=True)
    browser, answer = _through_provider(sso_app)
    assert answer.status_code == 302 and answer.headers["Location"] == "/cases"
    assert browser.get("/cases").status_code == 200
    accounts = sso_app.server.extensions["citydeck.access"].accounts
    account = accounts.get("ana.lopez")
    assert account.role == "health" and account.source == "sso"
    assert [e.action for e in accounts.audit.entries()] == ["account.add", "signin"]
    # A password cannot open an account the provider vouches for, whatever is tried.
    assert accounts.check("ana.lopez", "") is None and accounts.check("ana.lopez", "x" * 20) is None


@pytest.mark.redis
def test_someone_in_no_mapped_group_is_turned_away(sso_app, provider):
    provider.user = {"sub": "u-2", "preferred_username": "tourist", "groups": ["visitors"]}
    browser, answer = _through_provider(sso_app)
    assert answer.status_code == 403 and "no citydeck role" in answer.get_data(as_text=True)
    assert browser.get("/cases").status_code == 302


@pytest.mark.redis
def test_an_answer_with_a_forged_state_is_refused(sso_app):
    browser = sso_app.server.test_client()
    browser.get("/login/sso")
    answer = browser.get("/login/sso/back?code=abc&state=forged")
    assert answer.status_code == 403 and browser.get("/").status_code == 302


@pytest.mark.redis
def test_the_provider_s_answer_without_the_session_cookie_is_reloaded_same_site_once(sso_app):
    # SameSite=Strict keeps the cookie off the provider's redirect back: one same-site step brings it.
    cookieless = sso_app.server.test_client(use_cookies=False)
    step = cookieless.get("/login/sso/back?code=abc&state=xyz")
    page = step.get_data(as_text=True)
    assert step.status_code == 200 and 'http-equiv="refresh"' in page
    target = urlsplit(page.split("url=", 1)[1].split('"', 1)[0].replace("&amp;", "&"))
    assert target.path == "/login/sso/back" and parse_qs(target.query) == {
        "code": ["abc"],
        "state": ["xyz"],
        "step": ["1"],
    }


def test_group_mapping_rules():
    assert role_map("a=viewer, b = admin") == {"a": "viewer", "b": "admin"}
    with pytest.raises(SettingsError, match="unknown role"):
        role_map("a=mayor")
    with pytest.raises(SettingsError, match="group=role"):
        role_map("viewer")
    assert role_of(["a", "b", "zzz"], {"a": "viewer", "b": "health"}) == "health"
    assert role_of("a", {"a": "viewer"}) == "viewer" and role_of(None, {"a": "viewer"}) is None
    assert account_name({"preferred_username": "Ana.Lopez"}) == "ana.lopez"
    assert account_name({"sub": "x", "preferred_username": "has space"}).startswith("sso-")
