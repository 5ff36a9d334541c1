"""``vpseg report``: one self-contained HTML page of an evaluation's results (being built)."""

from __future__ import annotations

import argparse

from vpseg.errors import InputError


def report(args: argparse.Namespace) -> int:
    raise InputError("vpseg report is not built yet")
