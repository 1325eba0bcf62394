"""Every component id of the dashboard, in one place."""

from __future__ import annotations

# Shell: routing, controls, status around every page.
URL = "url"
SHELL = "shell"
CONTENT = "content"
NOTICE = "notice"
WINDOW = "window"
DISTRICT = "district"
NEIGHBOURHOOD = "neighbourhood"
DRILL_BACK = "drill-back"
BREADCRUMB = "breadcrumb"
STATUS_TICK = "status-tick"
STATUS_SINCE = "status-since"
FRESHNESS = "freshness"
BANNER = "banner"
ALARM_COUNT = "alarm-count"
ALARM = "alarm"
ALARM_TEXT = "alarm-text"  # the alarm that takes over the wall: what, where, since, the numbers behind it
ALARM_MAP = "alarm-map"  # where it is, on a map of the city
ALARM_REST = "alarm-rest"  # the other alarms, ranked
ALARM_SHOWN = "alarm-shown"  # the key of the alarm whose map is drawn
ALARMS_TICK = "alarms-tick"
ALARMS_SOURCE = "alarms-source"
ALARMS_STATE = "alarms-state"
ALARMS_BODY = "alarms-body"
ALARMS_LOG = "alarms-log"
ALARMS_PICK = "alarms-pick"  # the alarm an operator acknowledges
ALARMS_NOTE = "alarms-note"
ALARMS_ACK = "alarms-ack"
ALARMS_SAID = "alarms-said"
CLOCK = "clock"
WHO = "who"  # the signed-in account and role, and the way out
NAV_LINK = "nav-link"  # pattern: {"type": NAV_LINK, "page": name}
CARD_LINK = "card-link"  # pattern: {"type": CARD_LINK, "page": name}
AREA_MAP = "area-map"  # pattern: {"type": AREA_MAP, "page": name}; clicking an area drills into it

# Overview.
OVERVIEW_TICK = "overview-tick"
OVERVIEW_RENDERED = "overview-rendered"  # digests of the figure layouts and of each output last drawn
OVERVIEW_CASES_MAP = {"type": AREA_MAP, "page": "overview-cases"}
OVERVIEW_FOOT_MAP = {"type": AREA_MAP, "page": "overview-foot"}
OVERVIEW_SERVICES_MAP = {"type": AREA_MAP, "page": "overview-services"}
OVERVIEW_COMPLAINTS_MAP = {"type": AREA_MAP, "page": "overview-complaints"}
OVERVIEW_CASES_NUMBERS = "overview-cases-numbers"
OVERVIEW_FOOT_NUMBERS = "overview-foot-numbers"
OVERVIEW_SERVICES_NUMBERS = "overview-services-numbers"
OVERVIEW_COMPLAINTS_NUMBERS = "overview-complaints-numbers"

# Case tracing.
CASES_TICK = "cases-tick"
CASES_RENDERED = "cases-rendered"  # digests of the figure layouts and of each output last drawn
CASES_MAP = {"type": AREA_MAP, "page": "cases"}
CODES_MAP = {"type": AREA_MAP, "page": "cases-codes"}
CASES_NUMBERS = "cases-numbers"
CASES_AREAS = "cases-areas"
CASES_CLUSTERS = "cases-clusters"
# The precise view of case tracing: only for the health role, asked for with a reason, for a limited time.
PRECISE_REASON = "precise-reason"
PRECISE_OPEN = "precise-open"
PRECISE_CLOSE = "precise-close"
PRECISE_SAID = "precise-said"  # what a click on the precise view's buttons answered
PRECISE_STATUS = "precise-status"
PRECISE_MAP = "precise-map"
PRECISE_BODY = "precise-body"

# Foot traffic.
FOOT_TICK = "foot-tick"
FOOT_RENDERED = "foot-rendered"  # digests of the figure layouts and of each output last drawn
FOOT_HEAT_MAP = "foot-heat-map"
FOOT_SENSORS_MAP = "foot-sensors-map"
FOOT_NUMBERS = "foot-numbers"
FOOT_ALERTS = "foot-alerts"

# Services.
SERVICES_TICK = "services-tick"
SERVICES_RENDERED = "services-rendered"  # digests of the figure layouts and of each output last drawn
SERVICES_MAP = {"type": AREA_MAP, "page": "services"}
SERVICES_NUMBERS = "services-numbers"
SERVICES_CHANNELS = "services-channels"
SERVICES_CENTERS = "services-centers"

# Complaints.
COMPLAINTS_TICK = "complaints-tick"
COMPLAINTS_RENDERED = "complaints-rendered"  # digests of the figure layouts and of each output last drawn
COMPLAINTS_MAP = "complaints-map"
COMPLAINTS_AREAS_MAP = {"type": AREA_MAP, "page": "complaints"}
COMPLAINTS_NUMBERS = "complaints-numbers"
COMPLAINTS_CATEGORIES = "complaints-categories"
COMPLAINTS_ROUTING = "complaints-routing"
COMPLAINTS_TABLE = "complaints-table"
COMPLAINTS_TABLE_NOTE = "complaints-table-note"
COMPLAINTS_COLUMNS = "complaints-columns"  # which of the table's columns are shown
COMPLAINTS_EXPORT = "complaints-export"

# Health.
HEALTH_TICK = "health-tick"
HEALTH_BODY = "health-body"

# Admin.
ADMIN_TICK = "admin-tick"
ADMIN_BODY = "admin-body"
ADMIN_VERIFY = "admin-verify"

# Wall.
WALL_TICK = "wall-tick"
WALL_VIEW = "wall-view"
WALL_TITLE = "wall-title"
WALL_CONTENT = "wall-content"
WALL_SLOT = "wall-slot"  # pattern: {"type": WALL_SLOT, "view": name}
WALL_PROGRESS = "wall-progress"
SCREEN = "screen"  # the wall's screen size, which sets the size of the figures' type

# Each page's own refresh interval: on the wall only the view on screen (and the next, a tick early) runs.
PAGE_TICKS = {
    "overview": OVERVIEW_TICK,
    "cases": CASES_TICK,
    "foot-traffic": FOOT_TICK,
    "services": SERVICES_TICK,
    "complaints": COMPLAINTS_TICK,
    "health": HEALTH_TICK,
    "alarms": ALARMS_TICK,
    "admin": ADMIN_TICK,
}
WINDOW_CUSTOM = "window-custom"  # a custom window typed beside the presets ('36h', '7d')
# The page's moment: playback state (from the URL), the time controls, what the page shows and its current moment.
PLAYBACK = "playback"
MOMENT_PICK = "moment-pick"
PLAY_SPEED = "play-speed"
GO_LIVE = "go-live"
AS_OF = "as-of"
MOMENT_NOW = "moment-now"
BACK_TO_LIVE = "back-to-live"
