"""Spend as an SVG bar chart, drawn on the server: one stacked bar a day, one colour a
repository. Pure; every text it places is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

PALETTE = ("#0969da", "#1a7f37", "#9a6700", "#cf222e", "#8250df", "#bf3989", "#57606a")
WIDTH, HEIGHT, LEFT, BOTTOM = 720, 240, 48, 28


def _colours(repos: list[str]) -> dict[str, str]:
    return {repo: PALETTE[i % len(PALETTE)] for i, repo in enumerate(repos)}


def spend_chart(by_day: Mapping[str, Mapping[str, float]]) -> str:
    """`by_day`: day -> repository -> dollars, in day order."""
    repos = sorted({repo for per in by_day.values() for repo in per})
    colours = _colours(repos)
    top = max((sum(per.values()) for per in by_day.values()), default=0.0) or 1.0
    plot_h = HEIGHT - BOTTOM - 10
    step = (WIDTH - LEFT) / max(1, len(by_day))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 20 * len(repos)}" '
        f'role="img" aria-label="Model spend per day" class="chart">',
        f'<text x="4" y="14" font-size="11">${top:.2f}</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#888"/>',
    ]
    for index, (day, per) in enumerate(by_day.items()):
        x = LEFT + index * step
        y = float(HEIGHT - BOTTOM)
        for repo in repos:
            value = per.get(repo, 0.0)
            if value <= 0:
                continue
            height = value / top * plot_h
            y -= height
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{max(1.0, step - 4):.1f}" '
                f'height="{height:.1f}" fill="{colours[repo]}"><title>{escape(day)} '
                f"{escape(repo)}: ${value:.4f}</title></rect>"
            )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 10}" font-size="9" '
            f'text-anchor="middle">{escape(day[5:])}</text>'
        )
    for index, repo in enumerate(repos):
        y = HEIGHT + 14 + 20 * index
        parts.append(
            f'<rect x="{LEFT}" y="{y - 10}" width="10" height="10" fill="{colours[repo]}"/>'
        )
        parts.append(f'<text x="{LEFT + 16}" y="{y}" font-size="11">{escape(repo)}</text>')
    parts.append("</svg>")
    return "".join(parts)
