"""Prompt templates of pytest-orchestrator (Jinja2, ``*.j2``), installed as package data.

This directory is the package ``pytest_orchestrator.templates`` (see ``package-dir`` in
``pyproject.toml``); ``pytest_orchestrator.agents.templates`` loads and renders the files.
"""
