"""The ``vpseg`` command: one entry point, one sub-command per tool.

User mistakes (``InputError``, bad arguments, files that cannot be read or written) print one
line and exit with 2; notes print as ``note:`` lines and the run goes on; Ctrl-C prints one line
and exits with 130 whenever it comes: this module imports nothing before ``main`` runs, so the
parser, the commands and their libraries are all imported inside its guard. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    state = {"command": "vpseg"}
    try:
        from vpseg.cli._parser import run

        return run(argv, state)
    except KeyboardInterrupt:
        print(f"{state['command']}: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # Python 3.11 wraps a Ctrl-C that lands in a class's __set_name__
        if isinstance(exc.__cause__, KeyboardInterrupt):
            print(f"{state['command']}: interrupted", file=sys.stderr)
            return 130
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
