"""Command line: `auditor probe`, `auditor estimate`, `auditor run` (the only place that prints or exits)."""

from auditor.cli.main import main

__all__ = ["main"]
