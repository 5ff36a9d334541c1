"""Inline SVG charts for the HTML report, drawn in Python so that the page needs no script.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` listing its values (what
a screen reader reads), axis titles, tick labels and the value beside each mark; each mark has
its own ``<title>`` (a tooltip without JavaScript). Series differ in marker shape as well as
colour, so a chart reads in grey scale and for colour-blind readers (Okabe-Ito palette).
Scores arrive as fractions in [0, 1] and are drawn as percentages, as papers print them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "PALETTE", "bar_chart", "line_chart", "scatter_chart"]

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_MARKERS = ("circle", "square", "diamond")
_FONT = 'font-family="system-ui, sans-serif"'
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 20, 40, 52  # plot margins (px) around the plotting area


@dataclass(frozen=True)
class Series:
    """One named set of points: ``(x, y, tooltip)`` with ``y`` a fraction; ``None`` is skipped."""

    name: str
    points: Sequence[tuple[float, float | None, str]]


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_step(span: float, ticks: int = 5) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``ticks`` intervals."""
    raw = max(span, 1e-9) / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    return [i * step for i in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def _score_range(values: Sequence[float]) -> tuple[float, float, float]:
    """(low, high, step) in percent around ``values``: zoomed to show differences of a few
    points, kept inside [0, 100] so that the axis never suggests an impossible score."""
    pct = [100 * v for v in values]
    lo, hi = min(pct), max(pct)
    pad = max((hi - lo) * 0.15, 2.0)
    step = _nice_step(hi - lo + 2 * pad)
    low = max(0.0, math.floor((lo - pad) / step) * step)
    high = min(100.0, math.ceil((hi + pad) / step) * step)  # pad >= 2 keeps high > low
    return low, high, step


def _open(ident: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="chart" '
        f'aria-labelledby="{ident}-t {ident}-d" {_FONT} font-size="12">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="600" fill="#222">{escape(title)}</text>',
    ]


def _marker(shape: str, x: float, y: float, color: str, tip: str) -> str:
    tooltip = f"<title>{escape(tip)}</title>"
    if shape == "square":
        return (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}" '
                f'stroke="#fff" stroke-width="1">{tooltip}</rect>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f},{y - 5.5:.1f} L{x + 5.5:.1f},{y:.1f} L{x:.1f},{y + 5.5:.1f} '
                f'L{x - 5.5:.1f},{y:.1f} Z" fill="{color}" stroke="#fff" stroke-width="1">'
                f'{tooltip}</path>')
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}" stroke="#fff" '
            f'stroke-width="1">{tooltip}</circle>')


def _y_axis(lines: list[str], lo: float, hi: float, step: float, top: float, bottom: float,
            left: float, right: float, label: str) -> None:
    """Horizontal grid lines with tick labels, and the rotated axis title."""
    for tick in _ticks(lo, hi, step):
        y = bottom - (tick - lo) / (hi - lo) * (bottom - top)
        lines.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        lines.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'fill="#444">{_f(tick)}</text>')
    mid = (top + bottom) / 2
    lines.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle" '
                 f'fill="#222">{escape(label)}</text>')


def _legend(lines: list[str], series: Sequence[Series], x: float, y: float) -> None:
    for i, s in enumerate(series):
        lines.append(_marker(_MARKERS[i % 3], x, y - 4, PALETTE[i % len(PALETTE)], s.name))
        lines.append(f'<text x="{x + 9}" y="{y:.1f}" fill="#222">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)


def line_chart(ident: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
               x_label: str, y_label: str, width: int = 560, height: int = 320) -> str:
    """Scores at categorical x positions (``Series`` x = category index), one line per series,
    each point labelled with its value; the y axis is zoomed (``_score_range``)."""
    values = [y for s in series for _, y, _ in s.points if y is not None]
    desc = "; ".join(f"{s.name}: " + ", ".join(
        f"{categories[int(x)]} = {'n/a' if y is None else f'{100 * y:.2f}'}" for x, y, _ in s.points)
        for s in series)
    lines = _open(ident, title, f"{x_label} against {y_label}. {desc}", width, height)
    if not values:
        lines.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no values</text>')
        return "\n".join(lines + ["</svg>"])
    lo, hi, step = _score_range(values)
    left, right, top, bottom = _LEFT, width - _RIGHT, _TOP + 16, height - _BOTTOM
    _y_axis(lines, lo, hi, step, top, bottom, left, right, y_label)
    slot = (right - left) / max(len(categories), 1)

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x + 0.5) * slot, bottom - (100 * y - lo) / (hi - lo) * (bottom - top)

    for i, name in enumerate(categories):
        lines.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{bottom + 18}" '
                     f'text-anchor="middle" fill="#444">{escape(name)}</text>')
    lines.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#444"/>')
    lines.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 12}" text-anchor="middle" '
                 f'fill="#222">{escape(x_label)}</text>')
    for i, s in enumerate(series):
        color, shape = PALETTE[i % len(PALETTE)], _MARKERS[i % 3]
        pts = [(px(x, y), y, tip) for x, y, tip in s.points if y is not None]
        if len(pts) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{p[0]:.1f},{p[1]:.1f}"
                            for j, (p, _, _) in enumerate(pts))
            lines.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), value, tip in pts:
            lines.append(_marker(shape, x, y, color, tip))
            # alternate above / below so that close series stay legible, inside the plot
            above = (i % 2 == 0 or y + 17 > bottom - 2) and y - 9 > top + 2
            dy = -9 if above else 17
            lines.append(f'<text x="{x:.1f}" y="{y + dy:.1f}" text-anchor="middle" font-size="11" '
                         f'fill="{color}">{100 * value:.1f}</text>')
    _legend(lines, series, left + 4, _TOP)
    return "\n".join(lines + ["</svg>"])


def scatter_chart(ident: str, title: str, series: Sequence[Series], *, x_label: str,
                  y_label: str, width: int = 560, height: int = 340) -> str:
    """Points ``(count, score)``: x from 0 to the largest count, y from 0 to 100 (scores of
    single videos spread widely, and a fixed axis lets two reports be compared by eye)."""
    pts = [(x, y) for s in series for x, y, _ in s.points if y is not None]
    desc = "; ".join(f"{s.name}: " + ", ".join(tip for _, y, tip in s.points if y is not None)
                     for s in series)
    lines = _open(ident, title, f"{y_label} against {x_label}. {desc}", width, height)
    if not pts:
        lines.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no values</text>')
        return "\n".join(lines + ["</svg>"])
    x_max = max(max(x for x, _ in pts), 1.0)
    x_step = max(1.0, _nice_step(x_max, 6))
    x_max = math.ceil(x_max / x_step) * x_step
    left, right, top, bottom = _LEFT, width - _RIGHT, _TOP + 16, height - _BOTTOM
    inner = 12  # keep markers at 0 and at the maximum clear of the axes
    _y_axis(lines, 0.0, 100.0, 20.0, top, bottom, left, right, y_label)

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + inner + x / x_max * (right - left - 2 * inner),
                bottom - 100 * y / 100.0 * (bottom - top))

    for tick in _ticks(0.0, x_max, x_step):
        x = px(tick, 0)[0]
        lines.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#444"/>')
        lines.append(f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle" '
                     f'fill="#444">{_f(tick)}</text>')
    lines.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#444"/>')
    lines.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 12}" text-anchor="middle" '
                 f'fill="#222">{escape(x_label)}</text>')
    label_points = len(pts) <= 2 * 12  # value labels only while they do not pile up
    for i, s in enumerate(series):
        color, shape = PALETTE[i % len(PALETTE)], _MARKERS[i % 3]
        for x, y, tip in s.points:
            if y is None:
                continue
            cx, cy = px(x, y)
            lines.append(_marker(shape, cx, cy, color, tip))
            if label_points:
                lines.append(f'<text x="{cx + 8:.1f}" y="{cy + (-6 if i % 2 == 0 else 14):.1f}" '
                             f'font-size="11" fill="{color}">{100 * y:.1f}</text>')
    _legend(lines, series, left + 4, _TOP)
    return "\n".join(lines + ["</svg>"])


def bar_chart(ident: str, title: str, names: Sequence[str], values: Sequence[float], *,
              x_label: str, width: int = 640, row: int = 18) -> str:
    """Horizontal bars, one row per name (so 124 VIPSeg classes stay readable), x from 0 to
    100 %, the value printed at the end of each bar."""
    label_w = min(220, 12 + 7 * max((len(n) for n in names), default=4))
    left, right, top = label_w, width - 48, _TOP + 4
    height = top + row * max(len(names), 1) + 44
    bottom = top + row * len(names)
    desc = ", ".join(f"{n} {100 * v:.2f}" for n, v in zip(names, values, strict=True))
    lines = _open(ident, title, f"{x_label} per class: {desc}", width, height)
    for tick in range(0, 101, 20):
        x = left + tick / 100 * (right - left)
        lines.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#ddd"/>')
        lines.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" '
                     f'fill="#444">{tick}</text>')
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y = top + i * row
        w = max(value, 0.0) * (right - left)
        lines.append(f'<text x="{left - 6}" y="{y + row - 5}" text-anchor="end" '
                     f'fill="#222">{escape(name)}</text>')
        lines.append(f'<rect x="{left}" y="{y + 2}" width="{max(w, 0.5):.1f}" height="{row - 4}" '
                     f'fill="{PALETTE[0]}"><title>{escape(name)}: {100 * value:.2f}</title></rect>')
        lines.append(f'<text x="{left + w + 4:.1f}" y="{y + row - 5}" font-size="11" '
                     f'fill="#222">{100 * value:.1f}</text>')
    lines.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#444"/>')
    lines.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + 36}" text-anchor="middle" '
                 f'fill="#222">{escape(x_label)}</text>')
    return "\n".join(lines + ["</svg>"])
