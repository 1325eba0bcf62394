"""The small-cell rule on shared screens: whatever a suppressed community's count is (1 or 2), no figure at
any level (community, neighbourhood, district, city) reads differently, so none can be subtracted from
another to work it out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from views.privacy import shown_area, shown_total

# A city as districts of neighbourhoods of communities, each community with its count.
cities = st.lists(
    st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=4), min_size=1, max_size=3), min_size=1, max_size=4
)


def every_figure(city: list[list[list[int]]]) -> list[str]:
    """Every figure the drilled maps and headlines show, at every level."""
    communities = [n for district in city for hood in district for n in hood]
    figures = [shown_total(communities).text]  # the city's headline
    figures += [shown_area([n for hood in district for n in hood]).text for district in city]  # the city map
    for district in city:
        figures.append(shown_total([n for hood in district for n in hood]).text)  # a district's headline
        figures += [shown_area(hood).text for hood in district]  # its map of neighbourhoods
        for hood in district:
            figures.append(shown_total(hood).text)  # a neighbourhood's headline
            figures += [shown_area([n]).text for n in hood]  # its map of communities
    return figures


@given(cities, st.data())
def test_no_figure_tells_a_suppressed_count_of_1_from_one_of_2(city, data):
    shown = every_figure(city)
    hidden = [
        (d, h, c)
        for d, district in enumerate(city)
        for h, hood in enumerate(district)
        for c, n in enumerate(hood)
        if 0 < n < 3
    ]
    if not hidden:
        return
    d, h, c = data.draw(st.sampled_from(hidden))
    other = [[list(hood) for hood in district] for district in city]
    other[d][h][c] = 3 - city[d][h][c]  # 1 <-> 2
    assert every_figure(other) == shown


def test_the_reviewed_case_a_district_of_3_in_two_small_communities_shows_no_3():
    # Seen before the fix: the district showed 3 beside its two communities' '<3', so they were 1 and 2.
    assert shown_area([1, 2]).text == "0+ · 2 areas <3"
    assert shown_area([1]).text == "<3" and shown_area([4]).text == "4" and shown_area([4, 0]).text == "4"
    assert shown_area([5, 1]).text == "5+ · 1 area <3" and shown_area([5, 1]).at_least == 6
