"""``python -m setuptools_ghcr``."""

from __future__ import annotations

import sys

from setuptools_ghcr.cli import main

if __name__ == "__main__":
    sys.exit(main())
