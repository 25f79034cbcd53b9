"""Small SVG charts drawn on the server (no script, so they work under the CSP and in print)."""

import math
from html import escape

SEVERITY_COLOURS = {"SEV1": "#c0392b", "SEV2": "#d68910", "SEV3": "#b7950b", "SEV4": "#5d6d7e"}


# Text is sized for a phone: the SVG scales to its card, so a 360-unit-wide chart on a 340 px card
# keeps 12-unit text at about 11 px. CHAR_WIDTH is a generous estimate of one character at 12 units.
FONT = 12
CHAR_WIDTH = 7.2


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def line_chart_svg(title: str, weeks: list[str], by_severity: dict, width: int = 360, height: int = 280) -> str:
    """Mean (solid) and p90 (dashed) per week, one colour per severity, hours on the y axis; axis
    labels and a legend name everything a reader needs without hovering."""
    shown = {sev: points for sev, points in by_severity.items() if any(p["mean"] or p["p90"] for p in points)}
    legend_rows = 1 + math.ceil(max(len(shown), 1) / 4)
    # The right margin holds half of the last week label, which sits on the plot's edge.
    left, right, top = 52, math.ceil(_text_width("00-00") / 2) + 4, 28
    bottom = 44 + legend_rows * 18
    values = [p[key] for points in shown.values() for p in points for key in ("mean", "p90") if p[key]]
    top_value = max(values, default=3600) / 3600
    scale_max = max(1.0, math.ceil(top_value))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / max(1, len(weeks) - 1))

    def y(seconds: float) -> float:
        return top + plot_h - plot_h * (seconds / 3600) / scale_max

    summary = "; ".join(
        f"{sev}: latest mean {_hours(next((p['mean'] for p in reversed(points) if p['mean']), None))}"
        for sev, points in shown.items()
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<desc>{escape(summary or 'No incidents in these weeks.')}</desc>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for step in range(5):
        value = scale_max * step / 4
        ypos = y(value * 3600)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ypos:.1f}" y2="{ypos:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ypos + 4:.1f}" text-anchor="end" class="tick">{value:g}</text>')
    axis_y = top + plot_h
    parts.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">Hours</text>'
    )
    # As many week labels as fit without overlapping (each "MM-DD" is about 5 characters).
    every = max(1, math.ceil(len(weeks) * (_text_width("00-00") + 8) / plot_w))
    for i, week in enumerate(weeks):
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{axis_y + 16}" text-anchor="middle" class="tick">{week[5:]}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 34}" text-anchor="middle" class="axis-label">'
        "Week starting (month-day)</text>"
    )
    parts += _series(shown, x, y)
    parts += _legend(shown, axis_y + 52)
    if not shown:
        parts.append(
            f'<text x="{left + 8}" y="{top + plot_h / 2:.1f}" class="tick">No incidents in these weeks.</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _series(shown: dict, x, y) -> list[str]:
    """Each severity's mean (solid) and p90 (dashed) line, with a dot per week that has a value."""
    parts = []
    for severity, points in shown.items():
        colour = SEVERITY_COLOURS[severity]
        for key, dash in (("mean", ""), ("p90", ' stroke-dasharray="4 3"')):
            coords = [(x(i), y(p[key])) for i, p in enumerate(points) if p[key] is not None]
            if len(coords) > 1:
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            for a, b in coords:
                parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>')
    return parts


def _legend(shown: dict, legend_y: float) -> list[str]:
    """What the line styles and colours mean (the group is closed by the caller)."""
    parts = [
        f'<g class="legend"><line x1="0" x2="22" y1="{legend_y - 4}" y2="{legend_y - 4}" class="legend-line"/>'
        f'<text x="28" y="{legend_y}" class="tick">mean</text>'
        f'<line x1="80" x2="102" y1="{legend_y - 4}" y2="{legend_y - 4}" class="legend-line" stroke-dasharray="4 3"/>'
        f'<text x="108" y="{legend_y}" class="tick">p90</text>'
    ]
    for n, severity in enumerate(shown):
        row, col = divmod(n, 4)
        lx, ly = col * 80, legend_y + 18 * (row + 1)
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{SEVERITY_COLOURS[severity]}"/>'
            f'<text x="{lx + 18}" y="{ly}" class="tick">{severity}</text>'
        )
    return parts


def _hours(seconds) -> str:
    return "none" if seconds is None else f"{seconds / 3600:.1f} h"


def bar_chart_svg(title: str, bars: list[tuple[str, int, str]], width: int = 360) -> str:
    """Horizontal bars: (label, value, colour); the label column is as wide as the longest label."""
    top, row = 30, 26
    height = top + row * len(bars) + 6
    label_w = max((_text_width(label) for label, _, _ in bars), default=0) + 10
    value_w = _text_width(str(max((v for _, v, _ in bars), default=0))) + 8
    largest = max((v for _, v, _ in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<desc>{escape('; '.join(f'{label}: {value}' for label, value, _ in bars))}</desc>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value, colour) in enumerate(bars):
        ypos = top + i * row
        length = (width - label_w - value_w) * value / largest
        parts.append(f'<text x="0" y="{ypos + 14}" class="tick">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w:.1f}" y="{ypos}" width="{length:.1f}" height="18" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{ypos + 14}" class="tick">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)
