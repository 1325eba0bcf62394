"""Single sign-on through an OpenID Connect provider (authlib): the provider vouches for who someone is and
which groups they are in; ``CITYDECK_OIDC_ROLES`` maps those groups to citydeck's roles."""

from __future__ import annotations

import hashlib
import logging

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, request, url_for
from markupsafe import escape

from accounts.roles import ROLES, checked
from accounts.store import NAME, Account, Accounts
from settings import SettingsError

log = logging.getLogger("citydeck.access")


def role_map(text: str) -> dict[str, str]:
    """Parse 'group=role,group=role' into a mapping, refusing unknown roles."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        group, eq, role = part.rpartition("=")
        if not eq or not group.strip():
            raise SettingsError(f"CITYDECK_OIDC_ROLES: {part!r} is not group=role")
        try:
            out[group.strip()] = checked(role.strip())
        except ValueError as e:
            raise SettingsError(f"CITYDECK_OIDC_ROLES: {e}") from None
    return out


def role_of(groups, mapping: dict[str, str]) -> str | None:
    """The highest role any of the groups maps to, or None."""
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list | tuple):
        return None
    found = [mapping[g] for g in groups if isinstance(g, str) and g in mapping]
    return max(found, key=ROLES.index) if found else None


def account_name(claims: dict) -> str:
    """A citydeck account name for the person the provider names: their user name or e-mail when it fits,
    else a stable one made from the provider's subject."""
    for claim in ("preferred_username", "email"):
        value = claims.get(claim)
        if isinstance(value, str) and NAME.match(value.strip().lower()):
            return value.strip().lower()
    return "sso-" + hashlib.sha256(str(claims.get("sub", "")).encode()).hexdigest()[:20]


# The provider sends the browser back from its own site: a SameSite=Strict cookie does not come with that
# request. One same-site step (this page reloading itself) brings the session, and with it the sign-in state.
SAME_SITE_STEP = (
    '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={url}">'
    '<title>citydeck · signing in</title><p>Signing in… <a href="{url}">continue</a></p>'
)


class SingleSignOn:
    """One OpenID Connect client for the dashboard."""

    def __init__(self, server: Flask, settings, accounts: Accounts):
        self.settings = settings
        self.accounts = accounts
        self.roles = role_map(settings.oidc_roles)
        self.oauth = OAuth(server)
        self.client = self.oauth.register(
            "citydeck",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile email"},
        )

    def start(self):
        return self.client.authorize_redirect(url_for("sso_back", _external=True))

    def finish(self) -> tuple[Account | None, str]:
        """The account the provider's answer signs in, or None and why not."""
        try:
            token = self.client.authorize_access_token()
        except OAuthError as e:
            log.warning("single sign-on refused: %s", e)
            return None, "The sign-in through your organisation did not complete: please try again."
        claims = token.get("userinfo") or {}
        role = role_of(claims.get(self.settings.oidc_groups_claim), self.roles)
        if role is None:
            log.warning("single sign-on: %r has no group mapped to a role", claims.get("sub"))
            return None, "Your organisation's account has no citydeck role: ask an administrator for one."
        account = self.accounts.signed_in_through_sso(account_name(claims), role)
        if account.disabled:
            return None, "That account is disabled."
        return account, ""

    @staticmethod
    def same_site_step() -> str | None:
        """The page that reloads the provider's answer same-site, when the session cookie did not come with it."""
        if request.args.get("step") == "1" or request.cookies:
            return None
        url = request.full_path.rstrip("?") + "&step=1"
        return SAME_SITE_STEP.format(url=escape(url))
