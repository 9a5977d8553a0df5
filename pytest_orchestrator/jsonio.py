"""JSON read from outside the session, bounded: reports, baselines, gap-closure sessions,
agent answers, the container's result bundle.

Python's :mod:`json` accepts what no writer of ours produces and what later code cannot
take: integers of thousands of digits (``int`` -> ``float`` raises ``OverflowError``;
more than 4,300 digits raise ``ValueError`` in the parser), ``NaN`` and ``Infinity``, and
nesting deep enough to exhaust the stack (``RecursionError``). :func:`loads` turns every
one of these into a ``ValueError`` with a one-line message, so each boundary keeps a
single ``except ValueError`` and its own documented error.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Largest integer magnitude read: I-JSON's interoperable range (RFC 7493, section 2.2),
#: 2**53 - 1. No count, size or duration we write comes near it.
MAX_INT = 2**53 - 1
#: Deepest nesting read (objects and arrays). Our reports nest about 8 levels.
MAX_DEPTH = 64


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 16:  # more digits than MAX_INT has: refused unparsed
        raise ValueError(f"a number too large ({len(text)} digits; at most {MAX_INT})")
    value = int(text)
    if abs(value) > MAX_INT:
        raise ValueError(f"a number too large ({value}; at most {MAX_INT})")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number out of range ({text[:20]}...)")
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _lenient_int(text: str) -> int | float:
    try:
        return _int(text)
    except ValueError:
        return -math.inf if text.startswith("-") else math.inf


def decoder(lenient: bool = False) -> json.JSONDecoder:
    """A decoder with :func:`loads`'s number rules, for ``raw_decode`` (depth is checked
    by :func:`check_depth`)."""
    if lenient:
        return json.JSONDecoder(parse_int=_lenient_int)
    return json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value`` itself, once no object or array in it is nested deeper than ``limit``.

    :raises ValueError: nested deeper.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    raise ValueError(f"nested deeper than {limit} levels")
                stack.append((child, depth + 1))
    return value


def loads(data: str | bytes, limit: int = MAX_DEPTH, lenient: bool = False) -> Any:
    """The JSON value in ``data`` (UTF-8 bytes or text), with integers within
    :data:`MAX_INT`, finite floats, and at most ``limit`` levels of nesting.

    :param lenient: for a program's answer whose numbers are checked where they are used
        (an agent's cost and tokens): out-of-range numbers, ``NaN`` and ``Infinity`` are
        read as the floats ``inf``, ``-inf`` and ``nan`` instead of refused.
    :raises ValueError: not UTF-8, not JSON (a :class:`json.JSONDecodeError`, which has
        the line and column), or out of these bounds; the message is one line.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return check_depth(decoder(lenient).decode(text), limit)
    except RecursionError:
        raise ValueError(f"nested deeper than {limit} levels") from None
