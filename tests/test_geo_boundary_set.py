"""Loading a city from a boundary set whose levels do not nest: real Taiwanese villages and counties, where
each area goes, the repair report's real names, two-level cities and levels given by a label column."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from geo.boundary_set import SLIVER_M2, load_boundary_set
from geo.city import CityError
from geo.configured import city_for, parse_levels
from geo.loader import LevelFields, load_city
from settings import Settings
from tests.conftest import real_data

# Taiwan's own metric CRS (TWD97 / TM2 zone 121): the loader measures in UTM, so a check here is independent.
TWD97 = "EPSG:3826"


def taipei_villages() -> Path:
    return real_data("boundaries", "taipei_villages_derived.geojson")


def taiwan_1982() -> Path:
    return real_data("boundaries", "taiwan_twVillage1982.topo.json")


def overlaps_m2(lower: gpd.GeoDataFrame, upper: gpd.GeoDataFrame, lower_key: str, upper_key: str) -> dict:
    """{lower key: {upper key: m² of the lower area inside the upper one}}, measured in TWD97."""
    low = lower.dissolve(lower_key).to_crs(TWD97)
    up = upper.dissolve(upper_key).to_crs(TWD97)
    found: dict = {}
    for low_key, shape in low.geometry.items():
        for up_key, other in up.geometry.items():
            if shape.intersects(other):
                found.setdefault(str(low_key), {})[str(up_key)] = (
                    shapely.make_valid(shape).intersection(shapely.make_valid(other)).area
                )
    return found


def test_taipei_villages_that_cross_into_taipei_county_are_put_in_taipei_and_reported_by_name():
    villages_path, counties_path = taipei_villages(), taiwan_1982()
    city = load_boundary_set(
        LevelFields("COUNTYNAME", path=counties_path),
        community=LevelFields("VILLAGENAM", "VILLAGEID", path=villages_path),
    )
    # Two real files: 台北市's 447 villages (one of them in two features), and the 23 counties of 1982 whose
    # polygons, drawn county by county, overlap their neighbours along the border.
    villages = gpd.read_file(villages_path)
    counties = gpd.read_file(counties_path).set_crs("EPSG:4326")
    near = set(counties.cx[121.40:121.70, 24.90:25.25]["COUNTYNAME"])  # the counties around Taipei's bbox
    counties = counties[counties["COUNTYNAME"].isin(near)]
    assert city.districts["name"].tolist() == ["台北市"]
    assert len(city.communities) == villages["VILLAGEID"].nunique() == 447
    assert (city.communities["district_id"] == city.districts["district_id"].iloc[0]).all()

    truth = overlaps_m2(villages, counties, "VILLAGEID", "COUNTYNAME")
    crossing = {v for v, by in truth.items() if len(by) > 1 and sorted(by.values())[-2] >= 2 * SLIVER_M2}
    maybe = {v for v, by in truth.items() if len(by) > 1 and sorted(by.values())[-2] >= SLIVER_M2 / 2}
    reported = {r.area_id: r for r in city.nesting}
    assert crossing <= set(reported) <= maybe and len(crossing) >= 20

    name_of = dict(zip(villages["VILLAGEID"].astype(str), villages["VILLAGENAM"], strict=False))
    for village, repair in reported.items():
        assert (repair.level, repair.upper_level) == ("community", "district")
        assert repair.area_name == name_of[village] and repair.assigned_name == "台北市"
        assert [name for _, name, _, _ in repair.overlaps] == ["台北市", "台北縣"]
        for _, county, m2, _ in repair.overlaps:
            assert m2 == pytest.approx(truth[village][county], rel=0.01, abs=1.0)
    # 永樂里 of 大同區 reaches 348 m² into 三重市 of 台北縣 (0.14 % of its area).
    yongle = reported["6300006005"]
    assert yongle.area_name == "永樂里"
    assert yongle.overlaps[1][1] == "台北縣" and yongle.overlaps[1][3] == pytest.approx(0.0014, abs=0.0001)
    assert str(yongle).startswith("community 永樂里 (6300006005) overlaps 2 districts: 台北市 (")
    assert str(yongle).endswith(f"put in 台北市 ({yongle.assigned_id})")


def test_a_town_given_by_a_label_column_goes_to_the_county_it_overlaps_most(tmp_path):
    taiwan = gpd.read_file(taiwan_1982()).set_crs("EPSG:4326")
    region = taiwan[taiwan["COUNTYNAME"].isin(["台北市", "台北縣"])]
    path = tmp_path / "taipei_region_1982.geojson"
    region.to_file(path, engine="pyogrio")
    city = load_boundary_set(
        LevelFields("COUNTYNAME", path=path),
        LevelFields("TOWNNAME"),  # no polygons of its own: each town is the union of its villages
        LevelFields("VILLAGENAM", "VILLAGEID", path=path),
    )
    towns = region.groupby("TOWNNAME")["COUNTYNAME"].agg(set)
    assert (towns.map(len) == 1).all()  # no town name repeats across the two counties
    assert sorted(city.districts["name"]) == ["台北市", "台北縣"]
    assert len(city.neighbourhoods) == len(towns) == 41
    assert len(city.communities) == region["VILLAGEID"].nunique()
    county_of = dict(zip(city.districts["district_id"], city.districts["name"], strict=True))
    placed = {row.name: county_of[row.district_id] for row in city.neighbourhoods.itertuples()}
    assert placed == {town: next(iter(counties)) for town, counties in towns.items()}
    # The towns along the border cross it, and so do their villages; each is named with where it was put.
    towns_crossing = {r.area_name: r for r in city.nesting if r.level == "neighbourhood"}
    assert towns_crossing["三重市"].assigned_name == "台北縣" and towns_crossing["大同區"].assigned_name == "台北市"
    assert all({n for _, n, _, _ in r.overlaps} == {"台北市", "台北縣"} for r in towns_crossing.values())
    town_of = dict(zip(region["VILLAGEID"].astype(str), region["TOWNNAME"], strict=True))
    villages_crossing = [r for r in city.nesting if r.level == "community"]
    assert {r.area_name for r in villages_crossing} >= {"永樂里", "桂林里", "清和里"}
    assert all(r.assigned_name == town_of[r.area_id] for r in villages_crossing)  # each stays in its own town


def test_a_set_that_nests_needs_no_repair_and_matches_the_one_file_loader():
    path = taipei_villages()
    one_file = load_city(path, district="TOWNNAME", community=LevelFields("VILLAGENAM", "VILLAGEID"))
    city = load_boundary_set(
        LevelFields("TOWNNAME", path=path), None, LevelFields("VILLAGENAM", "VILLAGEID", path=path)
    )
    assert city.nesting == ()

    def district_names(c):
        names = dict(zip(c.districts["district_id"], c.districts["name"], strict=True))
        return dict(zip(c.communities["community_id"], c.communities["district_id"].map(names), strict=True))

    assert district_names(city) == district_names(one_file)
    assert len(city.neighbourhoods) == 12  # a two-level city: one neighbourhood per district


def grid(tmp_path: Path) -> tuple[Path, Path]:
    """Two towns side by side and three villages, the middle one 70 % in the east town and 30 % in the west."""
    towns = gpd.GeoDataFrame(
        {"TOWN": ["West", "East"]},
        geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)],
        crs=TWD97,
    )
    villages = gpd.GeoDataFrame(
        {"VILLAGE": ["Ash", "Birch", "Cedar"], "POP": [100, 200, 300]},
        geometry=[shapely.box(0, 0, 500, 1000), shapely.box(700, 0, 1700, 1000), shapely.box(1700, 0, 2000, 1000)],
        crs=TWD97,
    )
    towns_path, villages_path = tmp_path / "towns.gpkg", tmp_path / "villages.geojson"
    towns.to_file(towns_path, engine="pyogrio")
    villages.to_crs("EPSG:4326").to_file(villages_path, engine="pyogrio")
    return towns_path, villages_path


def test_a_straddling_village_goes_to_the_town_holding_most_of_it_and_the_report_gives_the_shares(tmp_path):
    towns_path, villages_path = grid(tmp_path)
    city = load_boundary_set(
        LevelFields("TOWN", path=towns_path), None, LevelFields("VILLAGE", path=villages_path), population="POP"
    )
    town = dict(zip(city.districts["district_id"], city.districts["name"], strict=True))
    placed = {r.name: town[r.district_id] for r in city.communities.itertuples()}
    assert placed == {"Ash": "West", "Birch": "East", "Cedar": "East"}
    (birch,) = city.nesting
    assert (birch.area_name, birch.assigned_name) == ("Birch", "East")
    assert [(name, round(share, 3)) for _, name, _, share in birch.overlaps] == [("East", 0.7), ("West", 0.3)]
    assert birch.overlaps[0][2] == pytest.approx(700_000, rel=5e-3)  # measured in UTM, not in the TWD97 drawn
    assert city.population("district").tolist() == [100, 500]  # West, East: Birch's residents go with it


def test_the_city_setting_loads_a_boundary_set_when_a_level_names_its_own_file(tmp_path, caplog):
    towns_path, villages_path = grid(tmp_path)
    settings = Settings.from_env(
        {"CITYDECK_CITY": str(villages_path), "CITYDECK_CITY_LEVELS": f"district=TOWN@{towns_path},community=VILLAGE"}
    )
    assert parse_levels(settings.city_levels)["district"].path == str(towns_path)
    with caplog.at_level("WARNING", logger="geo.configured"):
        city = city_for(settings)
    assert [r.area_name for r in city.nesting] == ["Birch"]
    # Whoever runs it is told, by the areas' names, where the levels did not nest and what was decided.
    (said,) = [r.getMessage() for r in caplog.records if r.name == "geo.configured"]
    assert "Birch" in said and "East" in said and "West" in said
    assert sorted(city.communities["name"]) == ["Ash", "Birch", "Cedar"]


def test_an_area_outside_every_upper_area_is_refused_by_name(tmp_path):
    towns_path, _ = grid(tmp_path)
    far = gpd.GeoDataFrame(
        {"VILLAGE": ["Ash", "Faraway"]},
        geometry=[shapely.box(0, 0, 500, 500), shapely.box(9000, 0, 9500, 500)],
        crs=TWD97,
    )
    far_path = tmp_path / "far.gpkg"
    far.to_file(far_path, engine="pyogrio")
    with pytest.raises(CityError, match=r"1 community area\(s\) of .*far.gpkg lie outside every district .*: Faraway"):
        load_boundary_set(LevelFields("TOWN", path=towns_path), None, LevelFields("VILLAGE", path=far_path))


def test_the_finest_level_needs_a_file_and_the_one_file_loader_refuses_a_level_with_its_own(tmp_path):
    towns_path, villages_path = grid(tmp_path)
    with pytest.raises(CityError, match="finest level given \\(community\\) needs a boundary file"):
        load_boundary_set(LevelFields("TOWN", path=towns_path), None, LevelFields("VILLAGE"))
    with pytest.raises(CityError, match="needs load_boundary_set"):
        load_city(villages_path, district=LevelFields("TOWN", path=towns_path), community="VILLAGE")


def test_a_set_of_districts_alone_or_of_districts_and_neighbourhoods_makes_the_missing_levels(tmp_path):
    shenzhen = load_boundary_set(
        LevelFields("name", "adcode", path=real_data("boundaries", "shenzhen_440300_full.json")), crs_source="gcj02"
    )
    assert len(shenzhen.districts) == len(shenzhen.communities) == 9 and shenzhen.nesting == ()
    assert shenzhen.district_of("440304-N00-C00") == "440304"  # 福田区
    towns_path, villages_path = grid(tmp_path)
    city = load_boundary_set(LevelFields("TOWN", path=towns_path), LevelFields("VILLAGE", path=villages_path))
    assert city.communities["community_id"].tolist() == [f"{n}-C00" for n in city.neighbourhoods["neighbourhood_id"]]
    town = dict(zip(city.districts["district_id"], city.districts["name"], strict=True))
    assert {r.name: town[r.district_id] for r in city.neighbourhoods.itertuples()} == {
        "Ash": "West", "Birch": "East", "Cedar": "East",
    }  # fmt: skip
    assert [(r.level, r.area_name) for r in city.nesting] == [("neighbourhood", "Birch")]


@pytest.mark.parametrize(
    ("zone", "told"), [(None, True), ("America/New_York", False), ("US/Eastern", False), ("America/Chicago", True)]
)
def test_a_city_whose_place_keeps_another_clock_than_the_time_zone_setting_is_told_which_to_set(
    tmp_path, caplog, zone, told
):
    # Two Manhattan blocks: their clock is New York's, not the default Shanghai's (nor Chicago's, an hour off).
    blocks = gpd.GeoDataFrame(
        {"BORO": ["Manhattan", "Manhattan"], "BLOCK": ["A", "B"]},
        geometry=[shapely.box(-74.00, 40.70, -73.99, 40.71), shapely.box(-73.99, 40.70, -73.98, 40.71)],
        crs="EPSG:4326",
    )
    path = tmp_path / "blocks.geojson"
    blocks.to_file(path, engine="pyogrio")
    env = {"CITYDECK_CITY": str(path), "CITYDECK_CITY_LEVELS": "district=BORO,community=BLOCK"}
    settings = Settings.from_env(env | ({"CITYDECK_CITY_TIMEZONE": zone} if zone else {}))
    with caplog.at_level("WARNING", logger="geo.configured"):
        city = city_for(settings)
    assert len(city.communities) == 2
    said = [r.getMessage() for r in caplog.records if r.name == "geo.configured"]
    if told:
        (message,) = said
        assert f"CITYDECK_CITY_TIMEZONE={settings.city_timezone}:" in message
        assert message.endswith("set CITYDECK_CITY_TIMEZONE=America/New_York")
    else:
        assert said == []
