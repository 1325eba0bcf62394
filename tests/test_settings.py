"""Settings: every one documented, read from the environment, bad values refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import Settings, SettingsError, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_readme_with_its_default():
    readme = (ROOT / "README.md").read_text()
    for row in markdown_table().splitlines()[2:]:
        assert row in readme, f"README lacks the settings row: {row}"


def test_every_setting_has_a_unit_and_a_line_of_help():
    for row in Settings.documented():
        assert row["env"] and row["unit"] and len(row["help"]) > 10


def test_settings_come_from_the_environment_given():
    s = Settings.from_env({"CITYDECK_BATCH_SIZE": "250", "REDIS_URL": "rediss://:pw@cache:6380/0"})
    assert s.batch_size == 250 and s.redis_url == "rediss://:pw@cache:6380/0"
    assert Settings.from_env({}).redis_url is None


def test_a_bad_value_names_the_variable_and_what_it_is_for():
    with pytest.raises(SettingsError, match="CITYDECK_RETENTION_HOURS='two days'"):
        Settings.from_env({"CITYDECK_RETENTION_HOURS": "two days"})


def test_a_city_level_mapping_is_parsed_and_a_bad_one_refused():
    from geo.city import CityError
    from geo.configured import parse_levels

    levels = parse_levels("district=TOWNNAME, community=VILLAGENAM:VILLAGEID")
    assert levels["district"].name == "TOWNNAME" and levels["community"].id == "VILLAGEID"
    with pytest.raises(CityError, match="district"):
        parse_levels("community=VILLAGENAM")
    with pytest.raises(CityError, match="expected level=name_property"):
        parse_levels("ward=NAME")


def test_a_city_time_zone_that_is_no_time_zone_is_refused_by_name():
    assert Settings.from_env({"CITYDECK_CITY_TIMEZONE": "Europe/Paris"}).city_timezone == "Europe/Paris"
    for wrong in ("Mars/Olympus", "../../etc/passwd", "x" * 300):
        with pytest.raises(SettingsError, match="CITYDECK_CITY_TIMEZONE"):
            Settings.from_env({"CITYDECK_CITY_TIMEZONE": wrong})
