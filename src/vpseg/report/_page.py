"""The HTML of the report: one page, inline CSS, inline SVG, clips as data: URIs, no script.

Every section is always present and says in words why it is empty when the results lack its
data (a VSPW run has no VPQ), so a reader never wonders whether the page is broken. Scores are
shown as percentages with two decimals, as ``vpseg eval`` prints them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from vpseg.report._clips import FPS, MAX_FRAMES, MAX_WIDTH, Clip
from vpseg.report._svg import Series, bar_chart, line_chart, scatter_chart

__all__ = ["page", "number"]

#: Family -> (heading, [(key, label)]) in the order papers report them; other keys follow.
_FAMILIES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "stq": ("STQ (segmentation and tracking quality)", [("STQ", "STQ"), ("AQ", "AQ"),
                                                        ("SQ", "SQ (IoU)")]),
    "vpq": ("VPQ (video panoptic quality)", [("VPQ", "VPQ"), ("VPQ_th", "VPQ things"),
                                              ("VPQ_st", "VPQ stuff")]),
    "pq": ("PQ (image panoptic quality)", [("PQ", "PQ"), ("SQ", "SQ"), ("RQ", "RQ"),
                                           ("PQ_th", "PQ things"), ("PQ_st", "PQ stuff")]),
    "semantic": ("Semantic segmentation", [("mIoU", "mIoU"), ("fwIoU", "fwIoU"),
                                           ("pixel_acc", "pixel acc"), ("mean_acc", "mean acc")]),
    "vc": ("VC (video consistency)", []),
    "tc": ("TC (temporal consistency)", []),
    "tracking": ("Tracking", [("PTQ", "PTQ"), ("sPTQ", "sPTQ"), ("IDS", "IDS"), ("sIDS", "sIDS"),
                              ("MOTSA", "MOTSA"), ("sMOTSA", "sMOTSA"), ("MOTSP", "MOTSP")]),
}
_COUNTS = {"frames", "instances", "IDS"}  # integers, not fractions
_RAW = {"sIDS"}  # a soft count: shown as is

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       background: #fff; margin: 0; }
header, main, footer { max-width: 980px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 1px solid #ddd; }
h1 { font-size: 1.6em; margin: 0.2em 0; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #eee; padding-bottom: 4px; }
h3 { font-size: 1em; margin: 0 0 0.4em; }
nav ul { list-style: none; padding: 0; margin: 0.6em 0 1em; display: flex; flex-wrap: wrap;
         gap: 4px 16px; }
a { color: #0060a0; }
.muted, figcaption, caption { color: #555; }
caption { text-align: left; padding: 4px 0; caption-side: top; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f4f5f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
.scroll { overflow-x: auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; }
.card .main { font-size: 1.7em; font-weight: 600; font-variant-numeric: tabular-nums; }
.card dl { display: grid; grid-template-columns: auto auto; margin: 0; gap: 0 12px; }
.card dt { color: #555; } .card dd { margin: 0; text-align: right;
                                     font-variant-numeric: tabular-nums; }
.notes { background: #fff8e5; border-left: 4px solid #e6a700; padding: 6px 12px; }
svg.chart { max-width: 100%; height: auto; display: block; }
figure { margin: 1em 0; }
video { max-width: 100%; height: auto; background: #000; display: block; }
details { margin: 0.5em 0 1em; }
footer { margin-top: 2em; padding: 12px 20px 30px; border-top: 1px solid #ddd; color: #555;
         font-size: 0.9em; }
"""

_SECTIONS = (("evaluated", "What was evaluated"), ("metrics", "Headline metrics"),
             ("per-video", "Per video"), ("vpq-k", "VPQ against window k"),
             ("instances", "STQ and AQ against instances per video"),
             ("per-class", "Per-class IoU"), ("clips", "Overlay clips"))


def number(value: object) -> float | None:
    """``value`` as a finite float, else None (JSON null, NaN, a string where a number was
    expected): the page shows "n/a" rather than failing on an odd value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _show(key: str, value: object) -> str:
    v = number(value)
    if v is None:
        return "n/a"
    if key in _COUNTS:
        return f"{v:,.0f}"
    if key in _RAW:
        return f"{v:.1f}"
    return f"{100 * v:.2f}"


def _text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "n/a" if value is None else str(value)


def _section(ident: str, body: str) -> str:
    title = dict(_SECTIONS)[ident]
    return (f'<section id="{ident}" aria-labelledby="{ident}-h">\n'
            f'<h2 id="{ident}-h">{escape(title)}</h2>\n{body}\n</section>')


def _empty(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def _notes(results: Mapping[str, Any]) -> list[str]:
    notes = [n for n in results.get("notes", []) if isinstance(n, str)]
    for family in ("stq", "vpq"):
        part = results.get(family)
        if isinstance(part, dict):
            notes += [f"{family}: {n}" for n in part.get("notes", []) if isinstance(n, str)]
    return notes


def _evaluated(results: Mapping[str, Any], source: str | None) -> str:
    config = results.get("config", {})
    rows = [("results file", source)] if source else []
    rows += [("format", config.get("format")), ("label space", config.get("label_space")),
             ("metric families", config.get("metrics"))]
    if "vpq_k" in config:
        rows.append(("VPQ windows k", f"{_text(config.get('vpq_k'))} (windows of "
                     f"{_text(config.get('vpq_windows'))} annotated frames; frame stride "
                     f"{_text(config.get('vpq_stride'))})"))
    rows += [("videos", config.get("videos")), ("annotated frames", config.get("frames")),
             ("vpseg version", config.get("vpseg"))]
    body = ['<table class="config"><tbody>']
    body += [f'<tr><th scope="row">{escape(k)}</th><td>{escape(_text(v))}</td></tr>'
             for k, v in rows if v is not None]
    body.append("</tbody></table>")
    if config:
        body.append('<details><summary>Every recorded parameter</summary><table><tbody>')
        body += [f'<tr><th scope="row">{escape(str(k))}</th><td>{escape(_text(v))}</td></tr>'
                 for k, v in config.items()]
        body.append("</tbody></table></details>")
    else:
        body.append(_empty("The results record no configuration (no \"config\" object)."))
    notes = _notes(results)
    if notes:
        body.append('<div class="notes" role="note"><h3>Notes</h3><ul>'
                    + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul></div>")
    return _section("evaluated", "\n".join(body))


def _metrics(results: Mapping[str, Any]) -> str:
    cards = []
    for family, (heading, known) in _FAMILIES.items():
        if family not in results:
            continue
        part = results[family]
        if family == "tc":
            items = [("TC", "TC", part)]
        elif family == "vc":
            items = [(f"VC_{n}", f"VC_{n}", v) for n, v in part.items() if n != "notes"]
        else:
            names = dict(known)
            keys = [k for k, _ in known if k in part]
            keys += [k for k, v in part.items() if k not in names and number(v) is not None]
            items = [(k, names.get(k, k), part[k]) for k in keys]
        if not items:
            continue
        first = items[0]
        rows = "".join(f"<dt>{escape(label)}</dt><dd>{_show(key, value)}</dd>"
                       for key, label, value in items[1:])
        cards.append(f'<div class="card" role="group" aria-labelledby="card-{family}">'
                     f'<h3 id="card-{family}">{escape(heading)}</h3>'
                     f'<div class="main" aria-label="{escape(first[1])}">'
                     f'{escape(first[1])} {_show(first[0], first[2])}</div>'
                     + (f"<dl>{rows}</dl>" if rows else "") + "</div>")
    intro = ('<p class="muted">Scores are percentages (fractions × 100, as papers print them); '
             'IDS is a count; n/a: not defined for these data (e.g. no window long enough).</p>')
    body = intro + '<div class="cards">' + "".join(cards) + "</div>" if cards else \
        _empty("The results hold no metric family.")
    return _section("metrics", body)


def _per_video(rows: Mapping[str, Mapping[str, Any]]) -> str:
    if not rows:
        return _section("per-video", _empty("The results hold no per-video scores."))
    columns = [c for c in ("frames", "instances") if any(c in r for r in rows.values())]
    for r in rows.values():
        columns += [k for k in r if k not in columns and not isinstance(r[k], (dict, list))]
    head = "".join(f'<th scope="col" class="num">{escape(c)}</th>' for c in columns)
    body = []
    for name, r in rows.items():
        cells = "".join(f'<td class="num">{_show(c, r.get(c))}</td>' for c in columns)
        body.append(f'<tr><th scope="row">{escape(name)}</th>{cells}</tr>')
    table = (f'<div class="scroll"><table><caption>{len(rows)} videos; scores in %, frames '
             '= annotated frames evaluated, instances = ground-truth thing tracks</caption>'
             f'<thead><tr><th scope="col">video</th>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table></div>')
    return _section("per-video", table)


def _vpq_k(results: Mapping[str, Any]) -> str:
    per_k = results.get("vpq", {}).get("per_k") if isinstance(results.get("vpq"), dict) else None
    if not per_k:
        return _section("vpq-k", _empty("The results hold no VPQ (evaluate with --metrics vpq)."))
    ks = list(per_k)
    series = [Series(label, [(i, number(per_k[k].get(key)),
                              f"{label} at k = {k}: {_show(key, per_k[k].get(key))}")
                             for i, k in enumerate(ks)])
              for key, label in (("VPQ", "VPQ"), ("VPQ_th", "VPQ things"), ("VPQ_st", "VPQ stuff"))]
    chart = line_chart("chart-vpq-k", "VPQ against window k", ks, series,
                       x_label="window k", y_label="VPQ (%)")
    keys = [c for c in ("VPQ", "VPQ_th", "VPQ_st", "SQ", "RQ") if any(c in v for v in per_k.values())]
    head = "".join(f'<th scope="col" class="num">{c}</th>' for c in keys)
    rows = "".join(f'<tr><th scope="row">{escape(k)}</th>'
                   + "".join(f'<td class="num">{_show(c, per_k[k].get(c))}</td>' for c in keys)
                   + "</tr>" for k in ks)
    config = results.get("config", {})
    windows = config.get("vpq_windows")
    caption = (f"k named as the preset names it; windows of {_text(windows)} annotated frames"
               if windows else "k as the preset names it")
    return _section("vpq-k", f"<figure>{chart}<figcaption>VPQ averaged over the video windows of "
                    f"each k; {escape(caption)}.</figcaption></figure>"
                    f'<table><caption>VPQ per window k (%)</caption><thead><tr>'
                    f'<th scope="col">k</th>{head}</tr></thead><tbody>{rows}</tbody></table>')


def _instances(rows: Mapping[str, Mapping[str, Any]], counted_from_gt: bool) -> str:
    have = {n: r for n, r in rows.items() if number(r.get("instances")) is not None}
    if not rows:
        text = "The results hold no per-video scores."
    elif not any(number(r.get("STQ")) is not None for r in rows.values()):
        text = "The results hold no STQ (evaluate with --metrics stq)."
    elif not have:
        text = ("The results record no per-video instance counts (written by an older vpseg); "
                "pass --gt to count them from the ground truth.")
    else:
        series = [Series(key, [(float(r["instances"]), number(r.get(key)),
                                f"{name}: {r['instances']} instances, {key} {_show(key, r.get(key))}")
                               for name, r in have.items()]) for key in ("STQ", "AQ")]
        chart = scatter_chart("chart-instances", "STQ and AQ against instances per video",
                              series, x_label="ground-truth thing tracks in the video",
                              y_label="score (%)")
        source = ("counted from the ground truth (--gt)" if counted_from_gt
                  else "as vpseg eval recorded them")
        return _section("instances", f"<figure>{chart}<figcaption>One mark per video and "
                        f"metric ({len(have)} videos); instance counts {source}. VIPSeg's "
                        "analysis: association gets harder as scenes hold more objects."
                        "</figcaption></figure>")
    return _section("instances", _empty(text))


def _per_class(results: Mapping[str, Any]) -> str:
    table = results.get("per_class", {})
    pairs = [(str(n), number(v.get("IoU"))) for n, v in table.items() if isinstance(v, dict)]
    shown = [(n, v) for n, v in pairs if v is not None]
    if not shown:
        return _section("per-class", _empty("The results hold no per-class IoU (evaluate with "
                                            "--metrics semantic)."))
    names, values = [n for n, _ in shown], [v for _, v in shown]
    chart = bar_chart("chart-per-class", "Per-class IoU", names, values, x_label="IoU (%)")
    miou = number(results.get("semantic", {}).get("mIoU")) if isinstance(
        results.get("semantic"), dict) else None
    mean = f"; their mean (mIoU) {100 * miou:.2f}" if miou is not None else ""
    return _section("per-class", f"<figure>{chart}<figcaption>{len(shown)} classes present in the "
                    f"ground truth or the predictions, in label-space order{mean}."
                    "</figcaption></figure>")


def _clips(clips: Sequence[Clip], why_none: str) -> str:
    if not clips:
        return _section("clips", _empty(why_none))
    size = sum(len(c.data) for c in clips)
    parts = [f'<p class="muted">Left: ground truth, right: prediction (colours: a stable colour '
             f'per track, the class colour for stuff). At most {MAX_FRAMES} frames per clip at '
             f'{FPS} frames/s, at most {MAX_WIDTH} px wide; {len(clips)} clip(s), '
             f'{size / 1e6:.1f} MB embedded.</p>']
    for clip in clips:
        cap = (f"first {clip.frames} of {clip.total_frames} frames" if clip.frames < clip.total_frames
               else f"all {clip.frames} frames")
        scaled = ("" if (clip.width, clip.height) == (clip.source_width, clip.source_height)
                  else f", scaled from {clip.source_width}×{clip.source_height}")
        data = base64.b64encode(clip.data).decode("ascii")
        label = f"Video {clip.name}: ground truth left, prediction right"
        parts.append(
            f'<figure><video controls loop muted playsinline preload="auto" width="{clip.width}" '
            f'height="{clip.height}" aria-label="{escape(label)}" title="{escape(label)}" '
            f'src="data:{clip.mime};base64,{data}">Your browser cannot play WebM ({clip.codec}) '
            f'video.</video><figcaption>Video {escape(clip.name)}: {cap}, {clip.width}×'
            f'{clip.height} {clip.codec}{scaled}.</figcaption></figure>')
    return _section("clips", "\n".join(parts))


def page(results: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]], clips: Sequence[Clip],
         *, counted_from_gt: bool, why_no_clips: str, source: str | None) -> str:
    """The whole HTML document. ``rows``: per-video scores (with instance counts where known)."""
    config = results.get("config", {})
    facts = [f"{label} {_text(config[key])}" for key, label in (
        ("format", "format"), ("label_space", "label space"), ("videos", "videos:"),
        ("frames", "annotated frames:"), ("vpseg", "vpseg")) if key in config]
    what = escape(" · ".join(facts) or "no configuration recorded")
    nav = "".join(f'<li><a href="#{i}">{escape(t)}</a></li>' for i, t in _SECTIONS)
    title = f"vpseg evaluation report{f' — {source}' if source else ''}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f'<header><h1>Evaluation report</h1><p class="muted">{what}</p>',
        f'<nav aria-label="Sections"><ul>{nav}</ul></nav></header>',
        "<main>",
        _evaluated(results, source),
        _metrics(results),
        _per_video(rows),
        _vpq_k(results),
        _instances(rows, counted_from_gt),
        _per_class(results),
        _clips(clips, why_no_clips),
        "</main>",
        "<footer>Written by <code>vpseg report</code>: one self-contained file (inline styles, "
        "SVG plots and WebM clips; no script, nothing loaded from elsewhere).</footer>",
        "</body></html>",
    ])
