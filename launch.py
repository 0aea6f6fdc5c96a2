#!/usr/bin/env python
"""ui3d launcher, threestudio-style: `python launch.py --config NAME [--dry-run] [key=value ...]` (see `ui3d.cli`)."""
import sys

from ui3d.cli import RUN_DIR_ENV, main  # noqa: F401  (re-exported: `launch.main` is what tests and users import)

if __name__ == "__main__":
    sys.exit(main())
