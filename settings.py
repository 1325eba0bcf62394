"""The one settings object: every knob of citydeck, read from the environment in one place.

Each setting has a name, a default, a unit and a line of help; `README.md` documents them
all and a test fails when one is missing there.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent


def _setting(env: str, default, unit: str, help: str):
    return field(default=default, metadata={"env": env, "unit": unit, "help": help})


class SettingsError(ValueError):
    """A setting in the environment has a value that cannot be used."""


ENVIRONMENTS = ("demo", "production")
# What stands in for a secret left unset.
UNSET_SECRETS = {
    "secret_key": "(not set: the demo's key, kept in CITYDECK_STATE_DIR, signs the sessions)",
    "audit_key": "(not set: derived from the session key)",
    "open311_api_keys": "(not set: the Open311 API takes no reports)",
}


@dataclass(frozen=True)
class Settings:
    """What a citydeck process needs to know about its deployment."""

    redis_url: str | None = _setting(
        "REDIS_URL",
        None,
        "URL",
        "Redis to use (redis:// or rediss:// with password; redis+cluster:// or rediss+cluster:// and any node"
        " for a Redis Cluster); empty starts an embedded redis-server, refused in production.",
    )
    environment: str = _setting(
        "CITYDECK_ENV",
        "demo",
        "demo or production",
        "'production' makes a missing REDIS_URL an error at start-up instead of an embedded redis-server (so is"
        " serving a non-loopback address): two machines must never keep two cities.",
    )
    state_dir: Path = _setting(
        "CITYDECK_STATE_DIR",
        PROJECT_ROOT / ".state",
        "path",
        "Folder for the embedded Redis data (append-only file) and caches.",
    )
    key_prefix: str = _setting(
        "CITYDECK_KEY_PREFIX", "citydeck", "text", "Prefix of every Redis key, so several cities can share one Redis."
    )
    stream_maxlen: int = _setting(
        "CITYDECK_STREAM_MAXLEN",
        1_000_000,
        "entries",
        "Approximate cap of each event stream (MAXLEN ~); size it for the longest worker outage to survive.",
    )
    backlog_warn_share: float = _setting(
        "CITYDECK_BACKLOG_WARN_SHARE",
        0.5,
        "share of the stream cap",
        "Events waiting to be folded, as a share of CITYDECK_STREAM_MAXLEN, from which the health view and the wall"
        " warn: at 1 the cap trims events no worker has read.",
    )
    dead_letter_maxlen: int = _setting(
        "CITYDECK_DEAD_LETTER_MAXLEN", 100_000, "entries", "Approximate cap of each dead-letter stream."
    )
    bucket_seconds: int = _setting(
        "CITYDECK_BUCKET_SECONDS",
        60,
        "s",
        "Width of the fine aggregate buckets; closed hours are rolled up into hourly ones.",
    )
    retention_hours: float = _setting(
        "CITYDECK_RETENTION_HOURS",
        48.0,
        "h",
        "How long fine (per-minute) aggregates and duplicate-detection keys are kept.",
    )
    history_days: int = _setting(
        "CITYDECK_HISTORY_DAYS",
        28,
        "days",
        "How long hourly aggregates are kept: the history that 'now versus normal' and forecasts compare with; "
        "history folded after its minutes' retention (an import of a past year) is kept this long from when it came.",
    )
    lateness_seconds: int = _setting(
        "CITYDECK_LATENESS_SECONDS",
        900,
        "s",
        "Minutes this far behind the newest event are closed at the next roll-up; events for them then count as late.",
    )
    future_tolerance_seconds: int = _setting(
        "CITYDECK_FUTURE_TOLERANCE_SECONDS",
        300,
        "s",
        "An event time further ahead of the worker's clock than this is rejected as from the future.",
    )
    max_text_length: int = _setting(
        "CITYDECK_MAX_TEXT_LENGTH", 2000, "characters", "Longest free text accepted in an event."
    )
    max_event_fields: int = _setting(
        "CITYDECK_MAX_EVENT_FIELDS",
        64,
        "fields",
        "Most fields an event may carry; a wider entry is dead-lettered, and a dead letter keeps at most this many.",
    )
    max_event_bytes: int = _setting(
        "CITYDECK_MAX_EVENT_BYTES",
        65_536,
        "bytes",
        "Most bytes of names and values an event may carry; a bigger entry is dead-lettered.",
    )
    dead_letter_field_bytes: int = _setting(
        "CITYDECK_DEAD_LETTER_FIELD_BYTES",
        1024,
        "bytes",
        "A dead letter keeps each name and value of the refused entry up to this many bytes, and says what it cut.",
    )
    h3_resolution: int = _setting(
        "CITYDECK_H3_RESOLUTION", 8, "H3 resolution", "Resolution of the H3 cells used for heat and hotspot layers."
    )
    city: str = _setting(
        "CITYDECK_CITY", "demo", "text or path", "'demo' for the generated demo city, or a GeoJSON/GeoPackage file."
    )
    city_levels: str = _setting(
        "CITYDECK_CITY_LEVELS",
        "",
        "mapping",
        "For a city file: which properties name each level, e.g. 'district=TOWNNAME,community=VILLAGENAM:VILLAGEID'"
        " (level=name_property[:id_property][@file]; neighbourhood optional). '@file' gives a level polygons of its"
        " own: levels that do not nest are repaired, each area put in the upper area it overlaps most.",
    )
    city_crs: str = _setting(
        "CITYDECK_CITY_CRS",
        "wgs84",
        "wgs84 or gcj02",
        "Datum of a city file's coordinates; gcj02 is converted on load.",
    )
    city_margin_km: float = _setting(
        "CITYDECK_CITY_MARGIN_KM",
        20.0,
        "km",
        "An event whose point lies further than this outside the city's bounding box is refused (outside_city), as"
        " is one at (0, 0) (null_island); nearer ones are counted as outside the city's areas.",
    )
    city_seed: int = _setting("CITYDECK_CITY_SEED", 7, "integer", "Seed of the generated demo city.")
    rules: str = _setting(
        "CITYDECK_RULES",
        "demo",
        "name or path",
        "Complaint triage and routing rules: a rule set shipped in engines/rules ('demo' for the demo city,"
        " 'municipal_en' for an English-language municipality) or a city's own folder holding taxonomy.json and"
        " routing.json.",
    )
    city_timezone: str = _setting(
        "CITYDECK_CITY_TIMEZONE",
        "Asia/Shanghai",
        "IANA time zone",
        "The city's local time: every clock shown, the hours that 'now versus normal' compares, working days and"
        " the time in exported file names. A city loaded from files whose place keeps another clock is warned of"
        " at start, with the zone to set.",
    )
    consumer_group: str = _setting(
        "CITYDECK_CONSUMER_GROUP", "aggregators", "text", "Consumer group the aggregator workers share."
    )
    batch_size: int = _setting(
        "CITYDECK_BATCH_SIZE",
        2000,
        "entries",
        "Most entries per stream an aggregator worker reads and commits at a time.",
    )
    block_ms: int = _setting(
        "CITYDECK_BLOCK_MS", 1000, "ms", "How long an idle aggregator worker waits for new entries per read."
    )
    claim_idle_ms: int = _setting(
        "CITYDECK_CLAIM_IDLE_MS",
        30_000,
        "ms",
        "Pending entries idle this long (their worker presumably died) are claimed by another worker.",
    )
    worker_timeout_s: float = _setting(
        "CITYDECK_WORKER_TIMEOUT_S",
        60.0,
        "s",
        "An aggregator worker silent this long is taken for dead: it leaves the health view (workers report every"
        " 2 s).",
    )
    infectious_days: float = _setting(
        "CITYDECK_INFECTIOUS_DAYS",
        2.0,
        "days",
        "A case's visits count as exposures from this long before symptom onset (or confirmation).",
    )
    contact_window_min: float = _setting(
        "CITYDECK_CONTACT_WINDOW_MIN",
        30.0,
        "min",
        "A check-in within this of a case's visit (when stays are unknown) makes a close contact.",
    )
    contact_quarantine_days: float = _setting(
        "CITYDECK_CONTACT_QUARANTINE_DAYS", 14.0, "days", "How long a close contact's health code stays yellow."
    )
    case_isolation_days: float = _setting(
        "CITYDECK_CASE_ISOLATION_DAYS", 14.0, "days", "How long a confirmed case's health code stays red."
    )
    crowding_share: float = _setting(
        "CITYDECK_CROWDING_SHARE",
        0.9,
        "share of capacity",
        "A place whose occupancy is at or over this share of its capacity is crowded: listed and marked on the foot"
        " page, and the start of a crowding stretch.",
    )
    crowding_grace_s: float = _setting(
        "CITYDECK_CROWDING_GRACE_S",
        600.0,
        "s",
        "A place crowded reading after reading for longer than this raises the crowding alarm.",
    )
    refresh_ms: int = _setting(
        "CITYDECK_REFRESH_MS",
        2000,
        "ms",
        "How often every dashboard view refreshes (one cached snapshot per view per tick).",
    )
    max_request_bytes: int = _setting(
        "CITYDECK_MAX_REQUEST_BYTES",
        1_000_000,
        "bytes",
        "Largest request body the dashboard reads; a larger one is refused with 413 (a browser's refresh sends a"
        " few KB).",
    )
    map_style: str = _setting(
        "CITYDECK_MAP_STYLE",
        "",
        "name or URL",
        "MapLibre tile style for sites with a network (e.g. 'carto-darkmatter' or a style URL); empty draws the"
        " city from its own boundaries on a plain background, with no tiles.",
    )
    geojson_simplify_m: float = _setting(
        "CITYDECK_GEOJSON_SIMPLIFY_M",
        25.0,
        "m",
        "Tolerance of the boundary simplification for GeoJSON sent to browsers.",
    )
    privacy_min_count: int = _setting(
        "CITYDECK_PRIVACY_MIN_COUNT",
        3,
        "count",
        "Health counts below this per area are shown as '<N' on shared screens (small-cell rule).",
    )
    stale_after_s: float = _setting(
        "CITYDECK_STALE_AFTER_S",
        120.0,
        "s",
        "The shortest silence reported as stale. A source is stale only when it is also silent for ten of its"
        " usual gaps between events at this hour: a quiet night is not a fault.",
    )
    wall_views: str = _setting(
        "CITYDECK_WALL_VIEWS",
        "overview,cases,foot-traffic,services,complaints",
        "list",
        "The wall's playlist: views it rotates through (comma-separated; the URL's ?views= overrides it).",
    )
    wall_dwell_s: float = _setting(
        "CITYDECK_WALL_DWELL_S", 20.0, "s", "How long the wall shows each view (the URL's ?dwell= overrides it)."
    )
    alarm_cluster_cases: int = _setting(
        "CITYDECK_ALARM_CLUSTER_CASES",
        3,
        "cases",
        "Cases linked in one cluster, its newest visit within 24 h, that raise a case-cluster alarm.",
    )
    alarm_urgent_complaints: int = _setting(
        "CITYDECK_ALARM_URGENT_COMPLAINTS",
        5,
        "complaints",
        "Complaints of the urgent categories (engines.complaints.URGENT_CATEGORIES) in one community within 1 h"
        " that raise a complaint-surge alarm.",
    )
    alarm_wait_target_s: float = _setting(
        "CITYDECK_ALARM_WAIT_TARGET_S",
        900.0,
        "s",
        "A service center whose mean wait in the last hour exceeds this raises an alarm.",
    )
    alarm_clear_after_s: float = _setting(
        "CITYDECK_ALARM_CLEAR_AFTER_S",
        120.0,
        "seconds",
        "An alarm clears only once its condition has stayed false this long, so it does not flap at its threshold.",
    )
    alarm_log_days: float = _setting(
        "CITYDECK_ALARM_LOG_DAYS",
        14.0,
        "days",
        "How long the alarm log (raised, acknowledged, cleared) is kept in Redis.",
    )

    auth: str = _setting(
        "CITYDECK_AUTH",
        "on",
        "on or off",
        "'on': every page and callback needs a signed-in account or a wall token. 'off' lets anyone on this"
        " machine in as an operator (never health or admin); other clients get 403, and it is refused in"
        " production and when serving a non-loopback address.",
    )
    secret_key: str = _setting(
        "CITYDECK_SECRET_KEY",
        "",
        "secret",
        "Key that signs session cookies (32+ random bytes, the same for every dashboard process). Required in"
        " production; the demo makes one in CITYDECK_STATE_DIR.",
    )
    audit_key: str = _setting(
        "CITYDECK_AUDIT_KEY",
        "",
        "secret",
        "Key of the audit log's hash chain (HMAC); empty: derived from CITYDECK_SECRET_KEY. Set it on its own to"
        " rotate that key without leaving the old entries unverifiable.",
    )
    session_idle_h: float = _setting(
        "CITYDECK_SESSION_IDLE_H",
        12.0,
        "h",
        "A browser session idle this long is signed out (a wall, refreshing, never is while it runs).",
    )
    cookie_secure: bool = _setting(
        "CITYDECK_COOKIE_SECURE",
        False,
        "true or false",
        "Mark the session cookie Secure: set it when browsers reach citydeck through TLS (a proxy in front).",
    )
    proxy_hops: int = _setting(
        "CITYDECK_PROXY_HOPS",
        0,
        "proxies",
        "Reverse proxies in front of citydeck whose X-Forwarded-For/-Proto to trust (for the rate limit's address"
        " and Secure cookies); 0 when browsers connect directly.",
    )
    signin_limit_account: str = _setting(
        "CITYDECK_SIGNIN_LIMIT_ACCOUNT",
        "5 per 15 minutes",
        "rate",
        "Failed sign-ins allowed per account name before sign-in is refused for it (flask-limiter notation).",
    )
    signin_limit_address: str = _setting(
        "CITYDECK_SIGNIN_LIMIT_ADDRESS",
        "30 per 15 minutes",
        "rate",
        "Failed sign-ins allowed per client address before sign-in is refused from it.",
    )
    open311_api_keys: str = _setting(
        "CITYDECK_OPEN311_API_KEYS",
        "",
        "secret",
        "Keys of the clients that may post Open311 service requests, as 'label=key' pairs separated by commas (the"
        " label names the client in logs and rate limits; a key is 16+ characters); empty: POST requests is refused.",
    )
    open311_limit: str = _setting(
        "CITYDECK_OPEN311_LIMIT",
        "30 per minute",
        "rate",
        "Service requests one Open311 API key may post (flask-limiter notation); posts with no valid key share one"
        " such allowance per client address.",
    )
    api_read_limit: str = _setting(
        "CITYDECK_API_READ_LIMIT",
        "120 per minute",
        "rate",
        "Reads of the public Open311 and NGSI-LD APIs allowed per client address (flask-limiter notation): each"
        " reads every complaint or sensor it answers about.",
    )
    open311_max_body_bytes: int = _setting(
        "CITYDECK_OPEN311_MAX_BODY_BYTES",
        16_384,
        "bytes",
        "Largest Open311 POST body read; a larger one is refused with 413 in the Open311 error format.",
    )
    open311_retry_window_s: int = _setting(
        "CITYDECK_OPEN311_RETRY_WINDOW_S",
        86_400,
        "s",
        "How long an Open311 post is remembered, so that the same post again (a client's retry, or the same"
        " Idempotency-Key header) answers the same service_request_id and files nothing new.",
    )
    open311_page_size: int = _setting(
        "CITYDECK_OPEN311_PAGE_SIZE",
        200,
        "requests",
        "Service requests per page of Open311 GET requests: the default and the largest page_size a client may ask.",
    )
    precise_grant_min: float = _setting(
        "CITYDECK_PRECISE_GRANT_MIN",
        30.0,
        "min",
        "How long a health officer's opening of the precise case-tracing view lasts before it must be asked again.",
    )
    oidc_issuer: str = _setting(
        "CITYDECK_OIDC_ISSUER",
        "",
        "URL",
        "OpenID Connect provider for single sign-on (its /.well-known/openid-configuration is read); empty: local"
        " accounts only.",
    )
    oidc_client_id: str = _setting("CITYDECK_OIDC_CLIENT_ID", "", "text", "citydeck's client id at the provider.")
    oidc_client_secret: str = _setting(
        "CITYDECK_OIDC_CLIENT_SECRET", "", "secret", "citydeck's client secret at the provider."
    )
    oidc_groups_claim: str = _setting(
        "CITYDECK_OIDC_GROUPS_CLAIM", "groups", "claim", "The ID-token claim that lists the user's groups."
    )
    oidc_roles: str = _setting(
        "CITYDECK_OIDC_ROLES",
        "",
        "mapping",
        "Provider groups to roles, e.g. 'city-it=admin,epi=health,ops=operator,managers=viewer'; a user gets the"
        " highest role of their groups, and no group mapped means no entry.",
    )

    def __post_init__(self):
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"CITYDECK_ENV={self.environment!r} is not one of {', '.join(ENVIRONMENTS)}")
        if self.auth not in ("on", "off"):
            raise SettingsError(f"CITYDECK_AUTH={self.auth!r} is not 'on' or 'off'")
        # Imported here: the engine owns how a rule-set choice is read, and settings load before anything else.
        from engines.complaints import rules_folder

        try:
            rules_folder(self.rules)
        except ValueError as error:
            raise SettingsError(f"CITYDECK_RULES={self.rules!r}: {error}") from None
        try:
            ZoneInfo(self.city_timezone)
        except (ValueError, OSError, ZoneInfoNotFoundError):
            raise SettingsError(
                f"CITYDECK_CITY_TIMEZONE={self.city_timezone!r} is not a time zone (an IANA name like 'Asia/Shanghai')"
            ) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Build settings from the environment (or a given mapping), then apply overrides."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f, raw)
        values.update(overrides)
        return cls(**values)

    def shown(self) -> list[tuple[str, str]]:
        """Each setting's variable and the value in force, as an admin screen may show it: secrets only as
        set or not, and a Redis URL without its password."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["unit"] == "secret":
                text = "(set)" if value else UNSET_SECRETS.get(f.name, "(not set)")
            elif f.name == "redis_url" and value:
                # The password runs to the last '@' of the address (redis-py reads 'p@ss' whole).
                text = re.sub(r"//([^:@/]*):[^/?#]*@", r"//\1:•••@", value)
                text = re.sub(r"(?i)([?&]password=)[^&]*", r"\1•••", text)
            else:
                text = "" if value is None else str(value)
            rows.append((f.metadata["env"], text))
        return rows

    @classmethod
    def documented(cls) -> list[dict[str, str]]:
        """Return name, default, unit and help of every setting, for docs and checks."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default
            if isinstance(default, Path):
                default = default.relative_to(PROJECT_ROOT) if default.is_relative_to(PROJECT_ROOT) else default
            rows.append(
                {
                    "env": f.metadata["env"],
                    "default": "" if default is None else str(default),
                    "unit": f.metadata["unit"],
                    "help": f.metadata["help"],
                }
            )
        return rows


def _parse(f: dataclasses.Field, raw: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("bool"):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("Path"):
            return Path(raw)
        return raw
    except ValueError:
        raise SettingsError(f"{f.metadata['env']}={raw!r} is not a valid {kind} ({f.metadata['help']})") from None


def markdown_table() -> str:
    """Return the settings as the Markdown table the README carries."""
    lines = ["| variable | default | unit | what it does |", "|---|---|---|---|"]
    for row in Settings.documented():
        default = f"`{row['default']}`" if row["default"] else "(none)"
        lines.append(f"| `{row['env']}` | {default} | {row['unit']} | {row['help']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
