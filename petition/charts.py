"""Charts drawn on the server as SVG: readable without JavaScript, with an accessible title and description.

Both page frames let the SVG shrink to its column (``max-width: 100%``), and its text shrinks with it. The
chart is therefore drawn small (``WIDTH``) with large text (``FONT``): in a phone's column of about 320 CSS
pixels the labels still render at 12 px or more, and on a wide screen the chart keeps its own size. The font
size is a presentation attribute on a class of our own, so no stylesheet's rule for ``.label`` overrides it.
"""

from __future__ import annotations

from datetime import date, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 460, 200
FONT = 18  # user units: 18 x 320 / 460 = 12.5 px at a phone's width
CHAR = 0.6 * FONT  # a generous average width of a character, to keep labels apart
SIDE, TOP, BASELINE = 8, 34, 152  # plot inset left and right; top of the tallest bar; the time axis
MAX_DAYS = 120
MAX_BAR = 24  # one day's bar stays a bar on a timeline, not a block across the chart
DAY_TICKS_FROM = 6  # user units a day needs before each day gets its own tick; weeks otherwise


def signatures(number: int) -> str:
    return f"{number:,} signature" + ("" if number == 1 else "s")


def period(opens_on: date, closes_on: date, today: date, closed_on: date | None = None) -> tuple[date, date]:
    """The days a petition's chart covers: from its opening day (the last ``MAX_DAYS`` at most) to today, its
    closing day or the day it was closed early, whichever is first. Before it opens: its opening day alone."""
    last = min(day for day in (today, closes_on, closed_on) if day is not None)
    last = max(last, opens_on)
    return max(opens_on, last - timedelta(days=MAX_DAYS - 1)), last


def _describe(first: date, last: date, total: int, peak: int, best: date, not_open_yet: bool) -> str:
    span = f"on {first:%-d %B %Y}" if first == last else f"from {first:%-d %B %Y} to {last:%-d %B %Y}"
    if not_open_yet:
        return f"No signatures yet: signing opens on {first:%-d %B %Y}."
    if not total:
        return f"No signatures {span}."
    if first == last:
        return f"{signatures(total)} {span}."
    return f"{signatures(total)} {span}; the most, {peak:,}, on {best:%-d %B %Y}."


def _text(x: float, y: float, content: str, anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y}" font-size="{FONT}" fill="currentColor" text-anchor="{anchor}" '
            f'class="chart-text">{escape(content)}</text>')


def per_day(series: list[tuple[date, int]], title: str, *, opens_on: date, closes_on: date, today: date,
            closed_on: date | None = None) -> Markup:
    """A bar per day of the petition's ``period``, the missing days as zero; days outside it are left out."""
    first, last = period(opens_on, closes_on, today, closed_on)
    values = {day: number for day, number in series if first <= day <= last}
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    counts = [values.get(day, 0) for day in days]
    peak, total = max(counts), sum(counts)
    best = days[counts.index(peak)]
    description = _describe(first, last, total, peak, best, not_open_yet=today < opens_on)

    left, right = SIDE, WIDTH - SIDE
    step = (right - left) / len(days)
    bar = min(MAX_BAR, step * 0.75)

    def centre(index: int) -> float:
        return left + (index + 0.5) * step

    parts = [f'<line x1="{left}" y1="{BASELINE}" x2="{right}" y2="{BASELINE}" class="axis" stroke="currentColor"/>']

    # The time axis: start and end dates under its ends, months between them where there is room.
    end_label = f"{last:%-d %b %Y}" + (" (today)" if last == today else "")
    if len(days) == 1:
        parts.append(_text(centre(0), HEIGHT - 10, end_label, "middle"))
        taken = [(centre(0) - len(end_label) * CHAR / 2, centre(0) + len(end_label) * CHAR / 2)]
    else:
        start_label = f"{first:%-d %b %Y}"
        parts.append(_text(left, HEIGHT - 10, start_label))
        parts.append(_text(right, HEIGHT - 10, end_label, "end"))
        taken = [(left, left + len(start_label) * CHAR), (right - len(end_label) * CHAR, right)]
    for index, day in enumerate(days):
        x = centre(index)
        if day.day == 1 and index:
            parts.append(f'<line x1="{x:.1f}" y1="{BASELINE}" x2="{x:.1f}" y2="{BASELINE + 14}" '
                         f'class="axis tick" stroke="currentColor"/>')
            label = f"{day:%b}"
            room = (x - len(label) * CHAR / 2 - CHAR, x + len(label) * CHAR / 2 + CHAR)
            if all(room[1] < a or room[0] > b for a, b in taken):  # a month's name only where it fits
                parts.append(_text(x, HEIGHT - 10, label, "middle"))
                taken.append(room)
        elif step >= DAY_TICKS_FROM or day.weekday() == 0:
            parts.append(f'<line x1="{x:.1f}" y1="{BASELINE}" x2="{x:.1f}" y2="{BASELINE + 6}" '
                         f'class="axis tick" stroke="currentColor"/>')

    # The scale: a faint line at the busiest day's height.
    if peak:
        parts.append(f'<line x1="{left}" y1="{TOP}" x2="{right}" y2="{TOP}" class="axis grid" stroke="currentColor" '
                     f'stroke-opacity="0.4" stroke-dasharray="4 4"/>')
        parts.append(_text(left, TOP - 10, f"Most in a day: {peak:,}"))
    else:
        parts.append(_text(left, TOP - 10, "No signatures yet" if today < opens_on else "No signatures"))

    plot_height = BASELINE - TOP
    for index, (day, count) in enumerate(zip(days, counts)):
        if not count:
            continue
        height = max(plot_height * count / peak, 2)  # a single signature stays visible beside thousands
        parts.append(f'<rect x="{centre(index) - bar / 2:.1f}" y="{BASELINE - height:.1f}" width="{bar:.1f}" '
                     f'height="{height:.1f}" class="bar"><title>{day:%-d %b %Y}: {signatures(count)}</title></rect>')

    svg = (
        f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(description)}</desc>'
        + "".join(parts) + "</svg>"
    )
    return Markup(svg)
