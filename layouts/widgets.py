"""Small building blocks shared by the pages: cards, headline numbers, live maps, simple tables."""

from __future__ import annotations

from dash import dcc, html

from layouts import ids

# A map or chart saves itself as PNG in the browser (Plotly's toImage, nothing uploaded); no button sends a
# figure anywhere else.
PNG = {"format": "png", "scale": 2}
GRAPH_CONFIG = {
    "displaylogo": False,
    "scrollZoom": True,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
    "toImageButtonOptions": PNG,
}
CHART_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": PNG,
}
# A wall is looked at, not touched: no mode bar, no zoom by wheel.
KIOSK_CONFIG = {"displayModeBar": False, "scrollZoom": False, "staticPlot": False, "showSendToCloud": False}


def png_name(id_) -> str:
    """The name a figure's saved PNG takes: citydeck and the figure's id (``services-area-map``)."""
    parts = [id_["page"], id_["type"]] if isinstance(id_, dict) else [str(id_)]
    return "citydeck-" + "-".join(parts)


def live_map(id_, height: str = "520px", data_role: str = "map") -> dcc.Graph:
    """An empty map that the page's refresh fills; the figure is sent whole once, then patched."""
    return dcc.Graph(
        id=id_,
        figure={"data": [], "layout": {"paper_bgcolor": "#0a1020", "plot_bgcolor": "#0a1020"}},
        config=GRAPH_CONFIG | {"toImageButtonOptions": PNG | {"filename": png_name(id_)}},
        style={"height": height},
        className=f"live-{data_role}",
    )


def chart(id_, height: str = "260px") -> dcc.Graph:
    return dcc.Graph(
        id=id_,
        figure={"data": [], "layout": {"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}},
        config=CHART_CONFIG | {"toImageButtonOptions": PNG | {"filename": png_name(id_)}},
        style={"height": height},
        className="live-chart",
    )


def for_the_wall(tree):
    """The same layout for a kiosk: every graph without its mode bar, filling its panel as the screen resizes;
    the page's refresh held until the wall puts the page on screen."""
    if isinstance(tree, dcc.Graph):
        tree.config = KIOSK_CONFIG
        tree.responsive = True
        return tree
    if isinstance(tree, dcc.Interval):
        tree.disabled = True
        return tree
    children = getattr(tree, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            for_the_wall(child)
    elif children is not None and hasattr(children, "_prop_names"):
        for_the_wall(children)
    return tree


def card(title, *children, link: str | None = None, page: str | None = None, class_name: str = "") -> html.Section:
    """A titled panel; with a link, the title leads to the page."""
    heading = (
        dcc.Link(title, href=link, id={"type": ids.CARD_LINK, "page": page} if page else None, className="card-link")
        if link
        else title
    )
    return html.Section([html.H2(heading, className="card-title"), *children], className=f"card {class_name}".strip())


def number(label: str, value, hint: str = "", tone: str = "") -> html.Div:
    """One headline number with its label."""
    return html.Div(
        [
            html.Div(value, className="number-value"),
            html.Div(label, className="number-label"),
            html.Div(hint, className="number-hint"),
        ],
        className=f"number {tone}".strip(),
    )


def table(columns: list[str], rows: list[list], class_name: str = "") -> html.Table:
    """A plain HTML table for short lists (a few rows; the long, sortable complaints table is a grid)."""
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(c) for c in columns])),
            html.Tbody([html.Tr([html.Td(v) for v in r]) for r in rows]),
        ],
        className=f"grid {class_name}".strip(),
    )


def empty(text: str) -> html.Div:
    return html.Div(text, className="empty")
