"""Helpers shared by the test suites (distributions built on the fly, ...)."""
