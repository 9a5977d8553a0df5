"""Secrets and terminal control sequences out of text that reaches logs and reports.

Agent output and error messages are untrusted: they may quote an API key (an agent that
printed its environment, a CLI that echoes its configuration) or carry escape sequences
that would act on the user's terminal. :func:`redact_text` is applied to every such text
before it is stored in a result, a report or the terminal.
"""

from __future__ import annotations

import os
import re
from typing import Any

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor, clear screen
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks
    r"|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # other escapes and control characters
)
#: Well-known token shapes: Anthropic, OpenAI, GitHub, Google, AWS, bearer tokens.
_TOKENS = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-(?:proj-)?[A-Za-z0-9_\-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|AIza[0-9A-Za-z_\-]{20,}|AKIA[0-9A-Z]{16}"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=\-]{8,}"
)
#: NAME=value where the name says it is a secret.
_ASSIGNMENT = re.compile(
    r"\b([A-Za-z_][A-Za-z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)[A-Za-z0-9_]*)"
    r"(\s*[=:]\s*)([\"']?)[^\s\"']+",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
MASK = "***"


def _secret_values() -> list[str]:
    """Values (8 characters or more) of this process's variables whose name says secret."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def strip_control(text: str) -> str:
    """``text`` without terminal control sequences and control characters (not ``\\n``,
    ``\\t``): untrusted output is data for the terminal, not commands."""
    return _CONTROL.sub("", text)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with control sequences removed and secrets replaced by ``***``: token
    shapes, ``NAME=value`` for secret-looking names, and the values of this process's
    secret-looking environment variables wherever they appear (``secrets``: those values,
    longest first, when the caller has read them once for many texts)."""
    text = strip_control(text)
    for value in _secret_values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    text = _TOKENS.sub(MASK, text)
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", text)


_COMMAND_START = re.compile(r"^(\s*)::")


def clean_line(text: str, secrets: list[str] | None = None) -> str:
    """``text`` safe for any output, on one line: secrets masked and control sequences
    removed (:func:`redact_text`, ``secrets`` as there), line breaks made spaces, and a
    leading ``::`` broken up (``: :``) so it can never start a GitHub workflow command."""
    text = " ".join(redact_text(text, secrets).replace("\r", "\n").split("\n"))
    return _COMMAND_START.sub(r"\1: :", text)


def clean_data(value: Any) -> Any:
    """JSON data (a report's ``model_dump``) with :func:`clean_line` applied to every string,
    keys included."""
    return _clean(value, _secret_values())


def _clean(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return clean_line(value, secrets)
    if isinstance(value, list):
        return [_clean(v, secrets) for v in value]
    if isinstance(value, dict):
        return {
            clean_line(k, secrets) if isinstance(k, str) else k: _clean(v, secrets)
            for k, v in value.items()
        }
    return value
