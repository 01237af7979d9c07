"""Orchestration: the audit plan (all validation, no network), the audit itself, and the estimate."""
