"""Charts drawn on the server as SVG: readable without JavaScript, with an accessible title and description."""

from __future__ import annotations

from datetime import date, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT, MARGIN = 720, 220, 36
MAX_DAYS = 120


def per_day(series: list[tuple[date, int]], title: str, until: date | None = None) -> Markup:
    """A bar per day, the missing days as zero, the last ``MAX_DAYS`` days at most."""
    until = until or (series[-1][0] if series else date.today())
    first = series[0][0] if series else until
    first = max(first, until - timedelta(days=MAX_DAYS - 1))
    values = dict(series)
    days = [first + timedelta(days=n) for n in range((until - first).days + 1)]
    counts = [values.get(day, 0) for day in days]
    peak = max(counts, default=0)
    total = sum(counts)
    if peak:
        best = days[counts.index(peak)]
        description = (f"{total:,} signatures from {first:%-d %B %Y} to {until:%-d %B %Y}; "
                       f"the most, {peak:,}, on {best:%-d %B %Y}.")
    else:
        description = f"No signatures from {first:%-d %B %Y} to {until:%-d %B %Y}."
    plot_width, plot_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    step = plot_width / len(days)
    bars = []
    for index, (day, count) in enumerate(zip(days, counts)):
        height = plot_height * count / peak if peak else 0
        x = MARGIN + index * step
        bars.append(f'<rect x="{x:.1f}" y="{MARGIN + plot_height - height:.1f}" width="{max(step - 1, 1):.1f}" '
                    f'height="{height:.1f}"><title>{day:%-d %b %Y}: {count:,}</title></rect>')
    svg = (
        f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(description)}</desc>'
        f'<line x1="{MARGIN}" y1="{MARGIN + plot_height}" x2="{WIDTH - MARGIN}" y2="{MARGIN + plot_height}" class="axis"/>'
        f'<text x="{MARGIN}" y="{MARGIN - 8}" class="label">{peak:,} a day at most</text>'
        f'<text x="{MARGIN}" y="{HEIGHT - 8}" class="label">{first:%-d %b %Y}</text>'
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 8}" class="label" text-anchor="end">{until:%-d %b %Y}</text>'
        + "".join(bars) + "</svg>"
    )
    return Markup(svg)
