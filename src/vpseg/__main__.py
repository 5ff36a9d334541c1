"""``python -m vpseg`` (also what ``torchrun -m vpseg train ...`` runs)."""

import sys

from vpseg.cli.main import main

sys.exit(main())
