"""``vpseg report``: one self-contained HTML page of an evaluation's results.

The page holds the headline metrics, a per-video table, VPQ against window k, STQ and AQ
against the number of ground-truth instances per video (VIPSeg's analysis), per-class IoU bars
and, given the ground truth and the predictions, overlay clips (ground truth | prediction). It
is one file with everything inline (CSS, SVG plots drawn here, WebM clips as ``data:`` URIs):
it can be mailed, attached to a CI run or opened offline, and it runs no script.

Input is the JSON of ``vpseg eval --json`` (``vpseg.evaluation.evaluate``; the demo's
``metrics.json`` is the same). Files of older vpseg versions lack the per-video instance
counts; with the ground truth at hand they are counted from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vpseg._atomic import write_text
from vpseg.core.labels import LabelSpace
from vpseg.errors import InputError
from vpseg.evaluation import METRIC_FAMILIES
from vpseg.formats import Format, get_format
from vpseg.report._clips import Clip, count_tracks, read_prediction, render_clip
from vpseg.report._page import number, page

__all__ = ["build_report", "check_results", "read_results", "write_report"]


def check_results(results: object, path: str | Path | None = None) -> dict[str, Any]:
    """``results`` if it has the shape of ``vpseg eval --json`` output, else an ``InputError``
    naming ``path``. Containers are checked; odd leaf values are shown as "n/a" on the page."""

    def bad(message: str) -> InputError:
        return InputError(message, path=path)

    if not isinstance(results, dict):
        raise bad(f"expected a JSON object (the output of vpseg eval --json), got "
                  f"{type(results).__name__}")
    if not any(family in results for family in METRIC_FAMILIES):
        raise bad("not a vpseg results file: it holds none of the metric families "
                  f"{', '.join(METRIC_FAMILIES)} (write one with vpseg eval --json)")
    for family in METRIC_FAMILIES:
        value = results.get(family)
        if family == "tc":
            if family in results and value is not None and number(value) is None:
                raise bad(f'"tc" must be a number or null, got {type(value).__name__}')
        elif family in results and not isinstance(value, dict):
            raise bad(f'"{family}" must be an object, got {type(value).__name__}')
    vpq = results.get("vpq", {})
    per_k = vpq.get("per_k", {})
    if not isinstance(per_k, dict) or not all(isinstance(v, dict) for v in per_k.values()):
        raise bad('"vpq"."per_k" must map each window k to an object of scores')
    for key in ("per_video", "per_class"):
        table = results.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise bad(f'"{key}" must map each name to an object of scores')
    if not isinstance(results.get("config", {}), dict):
        raise bad('"config" must be an object')
    for part in (results, results.get("stq", {}), vpq):
        notes = part.get("notes", [])
        if not isinstance(notes, list):
            raise bad('"notes" must be a list of strings')
    return results


def read_results(path: str | Path) -> dict[str, Any]:
    """Load and check a results JSON (``InputError`` naming ``path`` when it is not one)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=p) from None
    except IsADirectoryError:
        raise InputError("expected a results JSON file, found a folder", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=p) from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc}", path=p) from None
    return check_results(results, p)


def _format(results: Mapping[str, Any], fmt: Format | None) -> Format:
    if fmt is not None:
        return fmt
    name = results.get("config", {}).get("format")
    if not isinstance(name, str):
        raise InputError("the results record no format; pass the format of the ground truth "
                         "(--format)")
    try:
        return get_format(name)
    except KeyError as exc:
        raise InputError(f"the results name format {name!r}: {exc.args[0]}; pass --format") from None


def _from_ground_truth(results: Mapping[str, Any], rows: dict[str, dict[str, Any]], *,
                       gt: Path, pred: Path | None, fmt: Format | None, split: str | None,
                       label_space: LabelSpace | None, clips: int) -> tuple[list[Clip], bool]:
    """Read what the page needs from the ground truth: instance counts the results lack (into
    ``rows``) and, with ``pred``, the first ``clips`` videos' clips. Returns (clips, whether any
    count came from the ground truth)."""
    if not gt.exists():
        raise InputError("no such file or folder", path=gt)
    if pred is not None and not pred.exists():
        raise InputError("no such file or folder", path=pred)
    form = _format(results, fmt)
    available = form.list_videos(gt, split=split)
    if not available:
        raise InputError(f"no {form.name} ground-truth videos found", path=gt)
    names = list(rows) or available
    missing = [n for n in names if n not in available]
    if missing:
        raise InputError(f"the ground truth has no video {missing[0]!r} that the results list"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                         path=gt)
    out: list[Clip] = []
    counted = False
    for i, name in enumerate(names):
        want_count = name in rows and number(rows[name].get("instances")) is None
        want_clip = pred is not None and i < clips
        if not (want_count or want_clip):
            continue
        video = form.read_video(gt, name, split=split, label_space=label_space)
        if want_count:
            rows[name]["instances"] = count_tracks(video)
            counted = True
        if want_clip:
            assert pred is not None
            out.append(render_clip(video, read_prediction(form, pred, video, split=split,
                                                          labels=label_space)))
    return out, counted


def build_report(results: Mapping[str, Any], *, gt: str | Path | None = None,
                 pred: str | Path | None = None, fmt: Format | None = None,
                 split: str | None = None, label_space: LabelSpace | None = None,
                 clips: int = 4, source: str | Path | None = None) -> str:
    """The report's HTML (see ``write_report``)."""
    check_results(dict(results), source)
    if pred is not None and gt is None:
        raise InputError("overlay clips of a prediction (--pred) need the ground truth (--gt)",
                         path=pred)
    if not 0 <= clips <= 1000:
        raise InputError(f"--clips must be in 0..1000, got {clips}")
    rows = {name: dict(r) for name, r in results.get("per_video", {}).items()}
    shown: list[Clip] = []
    counted = False
    if gt is not None:
        shown, counted = _from_ground_truth(
            results, rows, gt=Path(gt), pred=None if pred is None else Path(pred), fmt=fmt,
            split=split, label_space=label_space, clips=clips)
    if pred is None:
        why = "No clips: pass the ground truth and the predictions (--gt and --pred)."
    else:
        why = "No clips: --clips 0."
    return page(results, rows, shown, counted_from_gt=counted, why_no_clips=why,
                source=None if source is None else str(source))


def write_report(results: dict[str, Any], out: Path, *, gt: str | Path | None = None,
                 pred: str | Path | None = None, fmt: Format | None = None,
                 split: str | None = None, label_space: LabelSpace | None = None,
                 clips: int = 4, source: str | Path | None = None) -> None:
    """Write the report of ``results`` (the ``vpseg eval --json`` object) to ``out``, atomically.

    ``gt`` (a ground-truth root in ``fmt``, default the results' own format, read with
    ``split`` and ``label_space`` as ``vpseg eval`` read it) adds instance counts the results
    lack; with ``pred`` (a prediction root) it adds overlay clips of the first ``clips`` videos.
    ``source`` names the results file in the page's header. Bad input raises ``InputError``.
    """
    html = build_report(results, gt=gt, pred=pred, fmt=fmt, split=split,
                        label_space=label_space, clips=clips, source=source)
    write_text(out, html)
