"""Lets `python setup.py sdist bdist_wheel ghcr_upload` work; the metadata is in pyproject.toml."""

from setuptools import setup

setup()
