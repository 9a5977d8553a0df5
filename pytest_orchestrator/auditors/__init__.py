"""Auditors: one per dimension (tests, coverage, lint, security, and third-party ones)."""
