"""A readable table of ``vpseg.evaluation.evaluate`` results (percentages, as papers print)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_results"]


def _pct(value: object) -> str:
    return "n/a" if value is None else f"{100 * float(value):6.2f}"  # type: ignore[arg-type]


def format_results(result: dict[str, Any]) -> str:
    lines = []
    if "stq" in result:
        r = result["stq"]
        lines.append(f"STQ {_pct(r['STQ'])}   AQ {_pct(r['AQ'])}   SQ (IoU) {_pct(r['SQ'])}")
        lines.extend(f"  note: {note}" for note in r.get("notes", []))
    if "vpq" in result:
        r = result["vpq"]
        per_k = "  ".join(f"k={k}: {_pct(v['VPQ'])}" for k, v in r["per_k"].items())
        lines.append(f"VPQ {_pct(r['VPQ'])}   VPQ_th {_pct(r['VPQ_th'])}   "
                     f"VPQ_st {_pct(r['VPQ_st'])}   ({per_k})")
        for note in r.get("notes", []):
            lines.append(f"  note: {note}")
    if "pq" in result:
        r = result["pq"]
        lines.append(f"PQ {_pct(r['PQ'])}   SQ {_pct(r['SQ'])}   RQ {_pct(r['RQ'])}   "
                     f"PQ_th {_pct(r['PQ_th'])}   PQ_st {_pct(r['PQ_st'])}")
    if "semantic" in result:
        r = result["semantic"]
        lines.append(f"mIoU {_pct(r['mIoU'])}   fwIoU {_pct(r['fwIoU'])}   "
                     f"pixel acc {_pct(r['pixel_acc'])}   mean acc {_pct(r['mean_acc'])}")
    if "vc" in result:
        lines.append("   ".join(f"VC_{n} {_pct(v)}" for n, v in result["vc"].items()))
    if "tc" in result:
        lines.append(f"TC {_pct(result['tc'])}")
    if "tracking" in result:
        r = result["tracking"]
        lines.append(f"PTQ {_pct(r['PTQ'])}   sPTQ {_pct(r['sPTQ'])}   IDS {r['IDS']}   "
                     f"sIDS {r['sIDS']:.1f}   MOTSA {_pct(r['MOTSA'])}   sMOTSA {_pct(r['sMOTSA'])}   "
                     f"MOTSP {_pct(r['MOTSP'])}")
    config = result.get("config", {})
    if config:
        lines.append(f"({config.get('videos')} videos, {config.get('frames')} annotated frames, "
                     f"label space {config.get('label_space')})")
    return "\n".join(lines)
