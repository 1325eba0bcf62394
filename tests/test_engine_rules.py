"""Complaint rule sets chosen by setting, and triage that reads words whatever their spelling: CamelCase,
snake_case, punctuation and letter case, with no danger reason taken from a word inside the name of a thing."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shutil
import time

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engines.complaints import RULES_DIR, load_rules, shipped_rule_sets, triage_text, words
from settings import Settings, SettingsError
from tests.conftest import real_data

NYC_SAMPLES = ("nyc311_2013-12_sample.csv", "nyc311_2014-2019_mixed_sample.csv")


@functools.cache
def nyc_requests() -> pd.DataFrame:
    """The real NYC 311 requests' complaint type and descriptor, and the two as one text."""
    frames = [
        pd.read_csv(real_data("complaints", name), usecols=["Complaint Type", "Descriptor"], dtype=str).fillna("")
        for name in NYC_SAMPLES
    ]
    requests = pd.concat(frames, ignore_index=True)
    requests["text"] = requests["Complaint Type"] + " " + requests["Descriptor"]
    return requests


def nyc_texts(complaint_type: str, descriptor: str) -> list[str]:
    """The real request texts of one NYC type and descriptor; fails when the samples hold none."""
    requests = nyc_requests()
    found = requests.loc[
        (requests["Complaint Type"] == complaint_type) & (requests["Descriptor"] == descriptor), "text"
    ].tolist()
    assert found, f"the NYC samples hold no {complaint_type!r} / {descriptor!r} request"
    return found


# ---------------------------------------------------------------------------- tokenisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Illegal_Parking", ["illegal", "parking"]),
        ("DoubleParkedBlockingTraffic", ["double", "parked", "blocking", "traffic"]),
        ("HTTPServer down", ["http", "server", "down"]),
        ("FIRE-ESCAPE!!", ["fire", "escape"]),
        ("No Water/Low Pressure (WA5)", ["no", "water", "low", "pressure", "wa", "5"]),
        ("FoodPoisoning1Or2", ["food", "poisoning", "1", "or", "2"]),
        ("井盖missing", ["井盖", "missing"]),
        ("  ", []),
    ],
)
def test_words_split_at_case_humps_underscores_punctuation_and_scripts(text, expected):
    assert words(text) == expected


# A word is letters or digits. Two letters at least: one-letter words run together in CamelCase ("AA") read as
# an acronym, as people mean them.
word = st.from_regex(r"[a-z]{2,8}|[0-9]{1,4}", fullmatch=True)
SPELLINGS = {
    "snake_case": lambda ws: "_".join(ws),
    "CamelCase": lambda ws: "".join(w.capitalize() for w in ws),
    "UPPER CASE": lambda ws: " ".join(ws).upper(),
    "kebab-case": lambda ws: "-".join(ws),
    "punctuated": lambda ws: ", ".join(ws) + "!",
}


@given(st.lists(word, min_size=1, max_size=6), st.sampled_from(sorted(SPELLINGS)))
def test_any_spelling_of_a_list_of_words_splits_back_into_those_words(ws, spelling):
    # Two numbers run together ("12" "3" as "123") are one number in any spelling.
    assume(spelling != "CamelCase" or not any(a.isdigit() and b.isdigit() for a, b in zip(ws, ws[1:])))
    assert words(SPELLINGS[spelling](ws)) == ws


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_real_311_request_is_triaged_the_same_however_it_is_spelled(data):
    text = data.draw(st.sampled_from(sorted(set(nyc_requests()["text"]))))
    spelling = data.draw(st.sampled_from(sorted(SPELLINGS)))
    spelled = SPELLINGS[spelling](words(text))
    assert triage_text(spelled) == triage_text(text)


# ---------------------------------------------------------------------------- names of things


@pytest.mark.parametrize("rules", ["demo", "municipal_en"])
def test_graffiti_on_a_fire_callbox_is_graffiti_not_a_fire(rules):
    taxonomy = load_rules(rules).taxonomy
    for real in nyc_texts("Graffiti", "Graffiti"):
        for text in (f"{real} on fire callbox", f"{real} on Fire_Callbox", f"{real} on FireCallbox #4471"):
            result = triage_text(text, taxonomy=taxonomy)
            assert (result.category, result.priority) == ("sanitation", 3), text
            assert "fire" not in result.reason, text
    # The words that name a fire still say so.
    burning = triage_text("Graffiti booth on fire, flames coming out", taxonomy=taxonomy)
    assert burning.priority == 1 and "fire — danger to life" in burning.reason


@pytest.mark.parametrize("rules", ["demo", "municipal_en"])
def test_a_car_double_parked_cuts_off_no_supplies(rules):
    taxonomy = load_rules(rules).taxonomy
    texts = nyc_texts("Illegal Parking", "Double Parked Blocking Traffic") + nyc_texts(
        "Illegal Parking", "Double Parked Blocking Vehicle"
    )
    texts += [
        "IllegalParking: DoubleParkedBlockingTraffic",
        "illegal_parking double_parked_blocking_vehicle",
        "A car double-parked, blocking the bus lane",
    ]
    for text in texts:
        result = triage_text(text, taxonomy=taxonomy)
        assert (result.category, result.priority) == ("traffic", 3), text
        assert "cut off" not in result.reason, text
    fallen = triage_text("Fallen branch blocking the road", taxonomy=taxonomy)
    assert fallen.priority == 2 and "cut off" in fallen.reason


def test_a_carbon_monoxide_detector_is_no_carbon_monoxide_but_the_gas_is():
    (detector,) = set(nyc_texts("SAFETY", "CARBON MONOXIDE DETECTOR"))
    (gas,) = set(nyc_texts("NONCONST", "CARBON MONOXIDE"))
    assert triage_text(detector).priority == 3
    assert triage_text(gas).priority == 2 and "carbon monoxide" in triage_text(gas).reason


def test_no_danger_reason_of_a_real_311_request_comes_from_inside_a_listed_name():
    taxonomy = load_rules("demo").taxonomy
    named = set()
    for text in set(nyc_requests()["text"]):
        normal = " ".join(words(text))
        names = [m.span() for m in taxonomy.names.finditer(normal)]
        named |= {normal[s:e] for s, e in names}
        quoted = re.search(r"\(“(.+?)”\)", triage_text(text).reason)
        if names and quoted is not None:
            at = normal.index(quoted.group(1))
            assert all(at + len(quoted.group(1)) <= s or e <= at for s, e in names), (text, quoted.group(1))
    # The names the real requests hold: each carried a danger word that once gave a false reason.
    assert named == {
        "injured wildlife", "fire safety director", "double parked blocking traffic", "double parked blocking vehicle",
        "smoke detector", "carbon monoxide detector", "fire escape", "fire hydrant",
    }  # fmt: skip


# ---------------------------------------------------------------------------- rule sets by setting


def test_the_shipped_rule_sets_are_the_demo_and_an_english_municipality():
    assert shipped_rule_sets() == ("demo", "municipal_en")
    assert Settings.from_env({}).rules == "demo"
    assert load_rules(Settings.from_env({}).rules).routing.departments["water"].startswith("Water Affairs Bureau")


def test_the_english_rule_set_is_chosen_by_setting_and_speaks_english():
    chosen = load_rules(Settings.from_env({"CITYDECK_RULES": "municipal_en"}).rules)
    raw = json.loads((RULES_DIR / "municipal_en" / "routing.json").read_text(encoding="utf-8"))
    assert chosen.name == "municipal_en"
    assert dict(chosen.routing.departments) == raw["departments"]
    assert not re.search(r"[\u3400-\u9fff]", (RULES_DIR / "municipal_en" / "taxonomy.json").read_text("utf-8"))
    # The demo's Chinese words mean nothing to it; its own English words do.
    assert triage_text("井盖丢失", taxonomy=chosen.taxonomy).category == "other"
    assert triage_text("井盖丢失", taxonomy=load_rules("demo").taxonomy).category == "manhole"
    assert triage_text("Manhole cover missing on Elm St", taxonomy=chosen.taxonomy).priority == 1


def test_a_city_brings_its_own_rule_folder_and_a_wrong_one_is_refused_by_name(tmp_path):
    own = tmp_path / "harbourtown"
    shutil.copytree(RULES_DIR / "municipal_en", own)
    routing = json.loads((own / "routing.json").read_text())
    routing["departments"]["dot"] = "Harbourtown Streets Office"
    (own / "routing.json").write_text(json.dumps(routing))
    rules = load_rules(Settings.from_env({"CITYDECK_RULES": str(own)}).rules)
    assert rules.name == "harbourtown" and rules.routing.departments["dot"] == "Harbourtown Streets Office"
    with pytest.raises(ValueError, match=r"'atlantis'.*\(demo, municipal_en\)"):
        load_rules("atlantis")
    with pytest.raises(SettingsError, match=r"CITYDECK_RULES='atlantis'.*\(demo, municipal_en\)"):
        Settings.from_env({"CITYDECK_RULES": "atlantis"})
    (own / "taxonomy.json").unlink()
    with pytest.raises(ValueError, match="no taxonomy.json there"):
        load_rules(str(own))


@pytest.mark.redis
def test_the_keeper_triages_and_routes_by_the_rule_set_its_settings_name(client, settings, city_map):
    from data.aggregator import Aggregator
    from data.keys import Keys
    from data.read import CityReader
    from data.read.complaints import complaint_table
    from tests.events import raw_event

    english = dataclasses.replace(settings, rules="municipal_en")
    worker = Aggregator(client, english, city_map, name="router")
    worker.ensure_groups()
    now = int(time.time() * 1000)
    texts = {
        "k-wire": "Exposed live wire hanging from a pole, unsafe",
        "k-graffiti": "Graffiti on FireCallbox",
        "k-chinese": "井盖丢失",
    }
    for seq, (complaint_id, text) in enumerate(texts.items(), 1):
        client.xadd(
            Keys(english.key_prefix).stream("complaints"),
            raw_event("complaint", seq=seq, ts=now, complaint_id=complaint_id, text=text, category=None),
        )
    worker.drain()
    rows = {r["complaint_id"]: r for r in complaint_table(CityReader(client, english), now)}
    routing = json.loads((RULES_DIR / "municipal_en" / "routing.json").read_text(encoding="utf-8"))
    wire = rows["k-wire"]
    assert (wire["category"], wire["priority"], wire["level"]) == ("public_safety", 1, "department")
    assert wire["holder"] == routing["departments"][routing["categories"]["public_safety"]["departments"][0]]
    assert (rows["k-graffiti"]["category"], rows["k-graffiti"]["priority"]) == ("sanitation", 3)
    assert rows["k-chinese"]["category"] == "other"


def test_the_english_rule_set_reads_real_new_york_requests_as_their_types_say():
    from tools.triage_nyc311 import read_requests, true_categories

    requests = read_requests([real_data("complaints", name) for name in NYC_SAMPLES])
    taxonomy = load_rules("municipal_en").taxonomy
    triaged = [triage_text(text, taxonomy=taxonomy).category for text in requests["text"]]
    # Measured: 93.6 % of 3,386 requests (the demo's set: 93.2 %); the floor leaves slack.
    assert (true_categories(requests).to_numpy() == triaged).mean() >= 0.90
