"""Small SVG charts drawn on the server (no script, so they work under the CSP and in print)."""

import math
from html import escape

SEVERITY_COLOURS = {"SEV1": "#c0392b", "SEV2": "#d68910", "SEV3": "#b7950b", "SEV4": "#5d6d7e"}


def line_chart_svg(title: str, weeks: list[str], by_severity: dict, width: int = 520, height: int = 220) -> str:
    """Mean (solid) and p90 (dashed) per week, one colour per severity; hours on the y axis."""
    left, right, top, bottom = 44, 10, 26, 34
    values = [p[key] for points in by_severity.values() for p in points for key in ("mean", "p90") if p[key]]
    top_value = max(values, default=3600) / 3600
    scale_max = max(1.0, math.ceil(top_value))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / max(1, len(weeks) - 1))

    def y(seconds: float) -> float:
        return top + plot_h - plot_h * (seconds / 3600) / scale_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for step in range(5):
        value = scale_max * step / 4
        ypos = y(value * 3600)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ypos:.1f}" y2="{ypos:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ypos + 4:.1f}" text-anchor="end" class="tick">{value:g} h</text>')
    for i, week in enumerate(weeks):
        if i % 2 == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" class="tick">{week[5:]}</text>')
    for severity, points in by_severity.items():
        colour = SEVERITY_COLOURS[severity]
        for key, dash in (("mean", ""), ("p90", ' stroke-dasharray="4 3"')):
            coords = [(x(i), y(p[key])) for i, p in enumerate(points) if p[key] is not None]
            if len(coords) > 1:
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            for a, b in coords:
                parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(title: str, bars: list[tuple[str, int, str]], width: int = 320, height: int = 160) -> str:
    """Horizontal bars: (label, value, colour)."""
    top, row = 28, 26
    largest = max((v for _, v, _ in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value, colour) in enumerate(bars):
        ypos = top + i * row
        length = (width - 150) * value / largest
        parts.append(f'<text x="0" y="{ypos + 13}" class="tick">{escape(label)}</text>')
        parts.append(f'<rect x="110" y="{ypos}" width="{length:.1f}" height="18" fill="{colour}"/>')
        parts.append(f'<text x="{114 + length:.1f}" y="{ypos + 13}" class="tick">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)
