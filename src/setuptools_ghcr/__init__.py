"""Publish Python distributions to OCI registries and install them back."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
