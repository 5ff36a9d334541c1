"""``vpseg report``: one self-contained HTML page of an evaluation's results (``vpseg.report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vpseg.cli._outputs import check_output_file
from vpseg.core.labels import load_label_space
from vpseg.errors import InputError
from vpseg.formats import get_format


def report(args: argparse.Namespace) -> int:
    from vpseg.report import read_results, write_report

    if args.pred and not args.gt:
        raise InputError("--pred needs --gt: the clips show ground truth | prediction")
    if not 0 <= args.clips <= 1000:
        raise InputError(f"--clips must be in 0..1000, got {args.clips}")
    try:
        fmt = None if args.format is None else get_format(args.format)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
    results = read_results(args.results)
    inputs = [p for p in (args.results, args.gt, args.pred) if p]
    check_output_file(args.out, "--out", inputs=inputs)
    labels = None if args.label_space is None else load_label_space(args.label_space)
    write_report(results, Path(args.out), gt=args.gt, pred=args.pred, fmt=fmt, split=args.split,
                 label_space=labels, clips=args.clips, source=args.results)
    size = Path(args.out).stat().st_size
    print(f"report: {args.out} ({size / 1e6:.1f} MB; open it in a browser)")
    return 0
