"""Citizen complaints from the hotline, the app, WeChat and the web, and each complaint's life
as it is routed community -> neighbourhood -> district -> department, resolved and closed.

Besides the everyday mix (noise at night, rubbish, potholes...), every run carries real-looking
clusters: a road whose street lights stay dark for several nights, a neighbourhood with
construction noise late at night, and a missing manhole cover reported by several passers-by.
The storm scenario brings a surge of flooding, fallen-tree, drainage and power complaints,
concentrated in a few low-lying districts, and in those on a few streets that flood first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from engines.complaints import URGENT_CATEGORIES
from simulators import rhythm
from simulators.source import MINUTE_MS, SourceModel

HOUR_MS = 3_600_000

# Shenzhen's 12345 hotline and its online channels took on the order of 20,000 requests a day.
COMPLAINTS_PER_RESIDENT_DAY = 20_000 / 17_560_000
CHANNELS: dict[str, tuple[float, rhythm.Rhythm]] = {
    "hotline": (0.45, rhythm.HOTLINE),
    "app": (0.25, rhythm.APP_ONLINE),
    "wechat": (0.20, rhythm.APP_ONLINE),
    "web": (0.10, rhythm.WEB_ONLINE),
}
EVERYDAY_CATEGORIES: dict[str, float] = {
    "noise": 0.15,
    "sanitation": 0.12,
    "road": 0.10,
    "traffic": 0.10,
    "housing": 0.10,
    "environment": 0.08,
    "streetlight": 0.06,
    "water": 0.06,
    "public_safety": 0.05,
    "drainage": 0.04,
    "health": 0.04,
    "manhole": 0.02,
    "other": 0.08,
}
STORM_CATEGORIES: dict[str, float] = {
    "water": 0.25,
    "drainage": 0.30,
    "environment": 0.22,
    "streetlight": 0.13,
    "public_safety": 0.10,
}
# Low-lying streets that flood first: this share of the storm's complaints comes from a few spots,
# each reported by many people, so a surge of urgent flooding complaints stands out in one community.
FLOOD_SPOTS = 3
FLOOD_SPOT_SHARE = 0.4
FLOOD_CATEGORIES: dict[str, float] = {"water": 0.6, "drainage": 0.4}
# At the storm's peak, complaints come in this many times faster than usual.
STORM_SURGE = 6.0
STORM_DISTRICTS = 3
INTAKE_CATEGORY_SHARE = 0.85
# How far up the hierarchy a complaint goes before it is resolved.
FINAL_LEVEL_WEIGHTS = {"community": 0.55, "neighbourhood": 0.25, "district": 0.12, "department": 0.08}
BOUNCE_SHARE = 0.2
REOPEN_SHARE = 0.04

ROADS = (
    "Shennan Avenue 深南大道",
    "Binhe Avenue 滨河大道",
    "Beihuan Avenue 北环大道",
    "Hongli Road 红荔路",
    "Huaqiang North Road 华强北路",
    "Xinzhou Road 新洲路",
    "Nanhai Avenue 南海大道",
    "Qiaoxiang Road 侨香路",
    "Longgang Avenue 龙岗大道",
    "Bao'an Avenue 宝安大道",
    "Meiguan Road 梅观路",
    "Buji Road 布吉路",
    "Xili Road 西丽路",
    "Honghua Road 红花路",
    "Minzhi Avenue 民治大道",
    "Guangming Avenue 光明大道",
    "Pingshan Avenue 坪山大道",
    "Shahe West Road 沙河西路",
)
TEXTS: dict[str, tuple[str, ...]] = {
    "road": (
        "Large pothole on {road} near {community}, cars swerving around it",
        "路面破损 Road surface broken on {road}, please repair",
        "Road works on {road} left unfenced overnight",
    ),
    "streetlight": (
        "Street lights out on {road} near {community}, very dark at night 路灯不亮",
        "Streetlight flickering outside block 3 of {community}",
    ),
    "manhole": (
        "Manhole cover missing on {road} near {community}, very dangerous 井盖丢失",
        "Manhole cover broken and tilted on {road}, a child almost fell in",
    ),
    "noise": (
        "Construction noise after 11pm at {community} 深夜施工噪音扰民",
        "Square dancing music too loud in {community} plaza 广场舞噪音",
        "KTV noise from a bar in {community} past midnight",
        "Neighbour renovation drilling at 7am on Sunday, {community}",
    ),
    "sanitation": (
        "Rubbish not collected for three days at {community} 垃圾没人清运",
        "Overflowing garbage bins behind the market in {community}",
        "Illegal dumping of construction waste on {road}",
    ),
    "water": (
        "No water supply in {community} since this morning 停水",
        "Water pipe burst on {road}, water everywhere",
        "Tap water is yellow in {community}",
    ),
    "drainage": (
        "Drain blocked on {road}, water backs up when it rains 下水道堵塞",
        "Sewage smell from the drain outside {community}",
    ),
    "housing": (
        "Landlord refuses to return the deposit, {community} 城中村",
        "Illegal rooftop structure built at {community}",
        "Lift broken for a week in building 5 of {community} 电梯故障",
    ),
    "traffic": (
        "Cars parked on the pavement along {road}, pedestrians walk on the road",
        "Traffic light at the {road} junction stuck on red",
        "Electric scooters riding against traffic on {road}",
    ),
    "environment": (
        "Restaurant kitchen smoke in {community} 油烟扰民",
        "Dust from the construction site on {road}",
        "Dead tree leaning over the footpath on {road}",
    ),
    "public_safety": (
        "Loose billboard swinging on {road}, could fall",
        "Fire exit blocked with bicycles in {community}",
        "Exposed electric wires near the playground in {community}",
    ),
    "health": (
        "Shop selling expired food in {community}",
        "Mosquitoes breeding in stagnant water at {community} 蚊虫",
        "Clinic in {community} not checking health codes 健康码",
    ),
    "other": (
        "Shared bikes piled up at the {community} metro exit 共享单车乱停放",
        "Please add a bus stop near {community}",
        "Stray dogs in {community} at night",
    ),
}
STORM_TEXTS: dict[str, tuple[str, ...]] = {
    "water": (
        "Street flooded on {road}, water up to the knees 内涝积水",
        "Underpass on {road} flooded, cars stuck",
        "Water coming into ground-floor homes at {community}",
    ),
    "drainage": (
        "Storm drains overflowing on {road} 雨水井冒水",
        "Drain grate blocked by leaves on {road}, the road is flooding",
    ),
    "environment": (
        "Fallen tree blocking {road} after the storm 树木倒伏",
        "Big branch broke off onto parked cars in {community}",
    ),
    "streetlight": (
        "Power cut in {community}, streetlights and lifts out 停电",
        "Streetlights dark along {road} since the storm",
    ),
    "public_safety": (
        "Power line down on {road} after the storm, dangerous 电线掉落",
        "Scaffolding collapsed on {road} in the wind",
    ),
}
DEPARTMENTS: dict[str, str] = {
    "road": "Transport Bureau 交通运输局",
    "streetlight": "Urban Management Bureau 城管局",
    "manhole": "Urban Management Bureau 城管局",
    "noise": "Ecology and Environment Bureau 生态环境局",
    "sanitation": "Urban Management Bureau 城管局",
    "water": "Water Affairs Bureau 水务局",
    "drainage": "Water Affairs Bureau 水务局",
    "housing": "Housing and Construction Bureau 住建局",
    "traffic": "Traffic Police 交警支队",
    "environment": "Ecology and Environment Bureau 生态环境局",
    "public_safety": "Emergency Management Bureau 应急管理局",
    "health": "Health Commission 卫健委",
    "other": "Government Services Data Administration 政数局",
}
# Where a department sends a complaint it bounces ("not our remit").
SECOND_DEPARTMENTS: dict[str, str] = {
    "noise": "Public Security Bureau 公安局",
    "environment": "Urban Management Bureau 城管局",
    "drainage": "Urban Management Bureau 城管局",
    "manhole": "Water Affairs Bureau 水务局",
}
RESOLUTION_NOTES: dict[str, str] = {
    "road": "Pothole filled and surface repaired 已修复",
    "streetlight": "Lamp and cable replaced, lights back on 已修复",
    "manhole": "New cover fitted, site made safe 已处理",
    "noise": "Site told to stop night work; patrol checked 已劝导",
    "sanitation": "Rubbish cleared, collection schedule restored 已清运",
    "water": "Supply restored 已恢复供水",
    "drainage": "Drain cleared 已疏通",
    "housing": "Owner ordered to rectify 已责令整改",
    "traffic": "Enforcement carried out 已处理",
    "environment": "Inspected and rectified 已整改",
    "public_safety": "Hazard removed 已排除隐患",
    "health": "Inspected; shop fined 已查处",
    "other": "Handled and citizen informed 已答复",
}
# Clusters play over these many nights from the run's start.
STREETLIGHT_NIGHTS = 4
NOISE_NIGHTS = 5


class Complaints(SourceModel):
    """Complaints of a simulated city and their routing."""

    source = "complaints"

    def prepare(self, rng: np.random.Generator) -> None:
        world = self.world
        self._serial = 0
        # Clusters are drawn before the first minute: a prefix of their own keeps their numbers apart.
        self._prefix = "TC"
        self._cluster_factor = min(1.0, world.scale) ** 0.3
        districts = sorted(set(world.community_districts))
        chosen = rng.choice(len(districts), size=min(STORM_DISTRICTS, len(districts)), replace=False)
        self.storm_districts = {districts[i] for i in chosen}
        in_storm = np.isin(world.community_districts, list(self.storm_districts))
        storm_weights = world.population_share * np.where(in_storm, 7.0, 1.0)
        self.storm_weights = storm_weights / storm_weights.sum()
        self._dark_road(rng)
        self._noisy_neighbourhood(rng)
        self._missing_manhole(rng)
        self._prefix = "TS"
        storm_communities = np.flatnonzero(in_storm)
        shares = world.population_share[storm_communities]
        self.flood_spots = rng.choice(
            storm_communities, size=min(FLOOD_SPOTS, len(storm_communities)), replace=False, p=shares / shares.sum()
        )

    def minute(self, start_ms: int, rng: np.random.Generator) -> None:
        hour, day = self.calendar.hour_and_day(start_ms)
        world = self.world
        self._serial = 0
        categories = dict(EVERYDAY_CATEGORIES)
        categories["noise"] *= rhythm.NIGHT_NOISE.level(hour, day)
        names = list(categories)
        weights = np.array(list(categories.values()))
        weights /= weights.sum()
        storm = self.scenario.storm_intensity(start_ms, self.start_ms)
        storm_names = list(STORM_CATEGORIES)
        storm_weights = np.array(list(STORM_CATEGORIES.values()))
        flood_names = list(FLOOD_CATEGORIES)
        flood_weights = np.array(list(FLOOD_CATEGORIES.values()))
        for channel, (share, channel_rhythm) in CHANNELS.items():
            expected = world.residents * COMPLAINTS_PER_RESIDENT_DAY * share * channel_rhythm.share_of_day(hour, day)
            for _ in range(rng.poisson(expected)):
                category = names[rng.choice(len(names), p=weights)]
                community = int(world.random_communities(1, rng)[0])
                self.file(start_ms + int(rng.integers(MINUTE_MS)), channel, category, TEXTS, community, rng)
            # Storm complaints come in at the day's average pace times the surge, whatever the hour.
            surge = world.residents * COMPLAINTS_PER_RESIDENT_DAY * share / 1440 * STORM_SURGE * storm
            for _ in range(rng.poisson(surge)):
                if rng.random() < FLOOD_SPOT_SHARE:
                    category = flood_names[rng.choice(len(flood_names), p=flood_weights)]
                    community = int(self.flood_spots[rng.integers(len(self.flood_spots))])
                else:
                    category = storm_names[rng.choice(len(storm_names), p=storm_weights)]
                    community = int(rng.choice(len(world.community_ids), p=self.storm_weights))
                self.file(start_ms + int(rng.integers(MINUTE_MS)), channel, category, STORM_TEXTS, community, rng)

    def _number(self, ts: int) -> str:
        self._serial += 1
        return f"{self._prefix}{datetime.fromtimestamp(ts // 1000, UTC):%Y%m%d%H%M}{self._serial:04d}"

    def file(
        self,
        ts: int,
        channel: str,
        category: str,
        texts: dict[str, tuple[str, ...]],
        community: int,
        rng: np.random.Generator,
        spot: tuple[float, float] | None = None,
        road: str | None = None,
    ) -> str:
        """Emit a complaint and schedule its life: assigned, escalated, resolved, closed."""
        options = texts[category]
        text = options[int(rng.integers(len(options)))].format(
            road=road or ROADS[int(rng.integers(len(ROADS)))], community=self.world.community_names[community]
        )
        lon, lat = spot if spot is not None else self.world.spot_in(community, rng)
        complaint_id = self._number(ts)
        self.emit(
            "complaint",
            ts,
            complaint_id=complaint_id,
            channel=channel,
            text=text,
            category=category if rng.random() < INTAKE_CATEGORY_SHARE else None,
            lon=lon,
            lat=lat,
        )
        self.route(complaint_id, ts, category, community, texts is STORM_TEXTS, rng)
        return complaint_id

    def route(
        self, complaint_id: str, ts: int, category: str, community: int, storm: bool, rng: np.random.Generator
    ) -> None:
        """Schedule a complaint's routing up the hierarchy until someone competent resolves it."""
        urgent = category in URGENT_CATEGORIES or storm
        world = self.world

        def later(low_h: float, high_h: float) -> int:
            nonlocal t
            t += int(rng.uniform(low_h, high_h) * HOUR_MS)
            if not urgent:
                t = self.calendar.next_working_time(t, rng)
            return t

        def update(action: str, level: str, note: str | None = None, department: str | None = None) -> None:
            self.emit(
                "complaint_update",
                t,
                complaint_id=complaint_id,
                action=action,
                level=level,
                department=department,
                note=note,
            )

        t = ts + int((rng.uniform(2, 10) if urgent else rng.uniform(10, 120)) * MINUTE_MS)
        update(
            "assigned", "community", f"Assigned to {world.community_names[community]} community workstation 社区工作站"
        )
        levels = list(FINAL_LEVEL_WEIGHTS)
        final = int(rng.choice(len(levels), p=list(FINAL_LEVEL_WEIGHTS.values())))
        holders = {
            "neighbourhood": world.neighbourhood_names.get(world.community_neighbourhoods[community], "subdistrict"),
            "district": world.district_names.get(world.community_districts[community], "district"),
        }
        department = None
        for level in levels[1 : final + 1]:
            later(*((0.5, 2) if urgent else (2, 24)))
            if level == "department":
                department = DEPARTMENTS[category]
                update("escalated", level, f"Needs {department}", department)
                if rng.random() < BOUNCE_SHARE:
                    later(2, 24)
                    update("bounced", "district", "Not within our remit 非本部门职责", None)
                    later(1, 8)
                    department = SECOND_DEPARTMENTS.get(category, department)
                    update("escalated", level, f"Reassigned to {department}", department)
            else:
                update("escalated", level, f"Beyond the community's means; sent to {holders[level]}")
        final_level = levels[final]
        later(*((0.5, 4) if urgent else (4, 72)))
        update("resolved", final_level, RESOLUTION_NOTES[category], department)
        if rng.random() < REOPEN_SHARE:
            later(6, 48)
            update("reopened", final_level, "Citizen says the problem is back 问题复发", department)
            later(4, 48)
            update("resolved", final_level, RESOLUTION_NOTES[category], department)
        t += int(rng.uniform(24, 72) * HOUR_MS)
        update("closed", final_level, "Closed after the citizen's confirmation 回访满意", department)

    def _evenings(self, nights: int, from_hour: float, hours: float) -> list[tuple[int, int]]:
        """Return (start, end) ms of the same local evening window over the next nights."""
        first = self.calendar.local(self.start_ms).date()
        windows = []
        for n in range(nights + 1):
            day = first + timedelta(days=n)
            begin = self.calendar.at(day, from_hour)
            end = begin + int(hours * HOUR_MS)
            if end > self.start_ms and len(windows) < nights:
                windows.append((max(begin, self.start_ms), end))
        return windows

    def _dark_road(self, rng: np.random.Generator) -> None:
        """A stretch of road whose street lights stay dark night after night."""
        world = self.world
        community = int(world.random_communities(1, rng)[0])
        neighbours = np.flatnonzero(world.community_neighbourhoods == world.community_neighbourhoods[community])
        other = int(rng.choice(neighbours))
        a, b = world.spots[community, 0], world.spots[other, 1]
        road = ROADS[int(rng.integers(len(ROADS)))]
        for night, (begin, end) in enumerate(self._evenings(STREETLIGHT_NIGHTS, 19.0, 5.0)):
            for _ in range(rng.poisson(5 * self._cluster_factor * (1 + night * 0.5))):
                along = rng.random()
                spot = tuple(a + (b - a) * along + rng.normal(0, 0.00005, 2))
                ts = int(rng.integers(begin, end))
                channel = "hotline" if rng.random() < 0.6 else "app"
                self.file(ts, channel, "streetlight", TEXTS, community, rng, spot=spot, road=road)

    def _noisy_neighbourhood(self, rng: np.random.Generator) -> None:
        """A neighbourhood kept awake by construction noise late at night."""
        world = self.world
        neighbourhood = world.community_neighbourhoods[int(world.random_communities(1, rng)[0])]
        communities = np.flatnonzero(world.community_neighbourhoods == neighbourhood)
        for begin, end in self._evenings(NOISE_NIGHTS, 22.5, 4.0):
            for _ in range(rng.poisson(6 * self._cluster_factor)):
                community = int(rng.choice(communities))
                ts = int(rng.integers(begin, end))
                text = {"noise": (TEXTS["noise"][0],)}
                self.file(ts, "hotline", "noise", text, community, rng)

    def _missing_manhole(self, rng: np.random.Generator) -> None:
        """A missing manhole cover, reported by several passers-by within an hour and a half."""
        world = self.world
        community = int(world.random_communities(1, rng)[0])
        spot = world.spots[community, 2]
        road = ROADS[int(rng.integers(len(ROADS)))]
        first = self.start_ms + int(rng.uniform(1, 4) * HOUR_MS)
        for _ in range(2 + rng.poisson(4 * self._cluster_factor)):
            ts = first + int(rng.uniform(0, 90) * MINUTE_MS)
            place = tuple(spot + rng.normal(0, 0.00003, 2))
            channel = ("hotline", "app", "wechat")[int(rng.integers(3))]
            self.file(
                ts, channel, "manhole", {"manhole": (TEXTS["manhole"][0],)}, community, rng, spot=place, road=road
            )
