"""The review statistics charts: axis labels, a legend, text that is not clipped and fits a phone."""

import itertools
import re
import xml.etree.ElementTree as ET

from incidents.charts import CHAR_WIDTH, bar_chart_svg, line_chart_svg

NS = {"svg": "http://www.w3.org/2000/svg"}
# 13 weeks, like the 90 days of the review list: the last one is labelled, on the plot's right edge.
WEEKS = [f"2026-{m:02d}-{d:02d}" for m, d in [(9, 7), (9, 14), (9, 21), (9, 28), (10, 5), (10, 12)] * 2 + [(11, 30)]]


def series(hours: list[float | None]) -> list[dict]:
    return [{"mean": h and h * 3600, "p90": h and h * 5400} for h in hours]


def texts(svg: str) -> list[tuple[float, str, str]]:
    root = ET.fromstring(svg)
    return [(float(t.get("x")), t.get("text-anchor", "start"), t.text or "") for t in root.iter(f"{{{NS['svg']}}}text")]


def width_of(svg: str) -> float:
    return float(ET.fromstring(svg).get("viewBox").split()[2])


def test_the_line_chart_names_its_axes_and_has_a_legend():
    svg = line_chart_svg(
        "Time to resolve, by week", WEEKS, {"SEV1": series([1, 2, None] * 4), "SEV3": series([0.5] * 12)}
    )
    labels = [text for _, _, text in texts(svg)]
    assert "Hours" in labels and "Week starting (month-day)" in labels
    assert {"mean", "p90", "SEV1", "SEV3"} <= set(labels) and "SEV2" not in labels  # only what is drawn
    assert "<desc>SEV1: latest mean 2.0 h; SEV3: latest mean 0.5 h</desc>" in svg


def test_week_labels_do_not_overlap_and_stay_inside():
    svg = line_chart_svg("Time to acknowledge, by week", WEEKS, {"SEV2": series([1] * 13)})
    ticks = sorted(x for x, anchor, text in texts(svg) if re.fullmatch(r"\d\d-\d\d", text))
    half = 5 * CHAR_WIDTH / 2
    assert all(b - a > 2 * half for a, b in itertools.pairwise(ticks))
    assert len(ticks) >= 5 and "11-30" in svg
    assert ticks[0] - half >= 0 and ticks[-1] + half <= width_of(svg)


def test_bar_labels_are_not_clipped_by_their_bars():
    bars = [("Overdue, unpublished", 12, "#c0392b"), ("Published on time", 140, "#1e8449")]
    svg = bar_chart_svg("Reviews (last 90 days)", bars)
    root = ET.fromstring(svg)
    bar_x = min(float(r.get("x")) for r in root.iter(f"{{{NS['svg']}}}rect"))
    for x, _, text in texts(svg):
        if text in ("Overdue, unpublished", "Published on time"):
            assert x + len(text) * CHAR_WIDTH <= bar_x
        if text == "140":
            assert x + len(text) * CHAR_WIDTH <= width_of(svg)
    assert "<desc>Overdue, unpublished: 12; Published on time: 140</desc>" in svg


def test_charts_are_drawn_small_enough_for_a_phone():
    assert width_of(line_chart_svg("t", WEEKS, {})) <= 360
    assert width_of(bar_chart_svg("t", [("a", 1, "#000")])) <= 360
    assert "No incidents in these weeks." in line_chart_svg("t", WEEKS, {})
