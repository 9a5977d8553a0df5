"""Reading the JUnit XML that a remote pytest wrote, as untrusted text.

The file comes from pytest's own ``junitxml`` plugin (pytest 7.x-9.x, ``--junitxml``, the
default ``junit_family=xunit2``, run with ``-o junit_logging=all -o
junit_log_passing_tests=false``)::

    <testsuites name="pytest tests">
      <testsuite name="pytest" errors=".." failures=".." skipped=".." tests=".." time="..">
        <testcase classname="tests.test_x.TestC" name="test_a[1]" time="0.012">
          <failure message="assert 1 == 2">...traceback (the long repr)...</failure>
          <system-out>...</system-out><system-err>...</system-err>
        </testcase>
        ...

It was written inside a container, so it is parsed with ``defusedxml``: a DTD, any entity
declaration and any external reference are refused before anything is expanded or fetched.
The validated element tree is then read with ``junitparser``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as _defused_fromstring
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase

_REFUSED = (
    "the JUnit XML declares a DTD or entities, which are refused "
    "(entity expansion is never evaluated)"
)
_TEARDOWN_PREFIX = "failed on teardown"
# Characters XML 1.0 cannot hold; pytest writes them in a testcase's name as '#xNN' / '#xNNNN'.
# (Its pattern also escapes DEL, 0x7F.)
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class JUnitError(Exception):
    """The JUnit XML cannot be read; str() is one line saying why (truncated, not XML, hostile,
    wrong root)."""


@dataclass(frozen=True)
class Detail:
    """One result element of a ``<testcase>``: ``<failure>``, ``<error>`` or ``<skipped>``.

    ``message`` is the ``message`` attribute ('' if none; pytest cuts it to about 500
    characters and it may span lines), ``text`` the element's text (pytest's long repr, i.e.
    the traceback; '' if none) and ``type`` the ``type`` attribute ('' if none; pytest writes
    it only on ``<skipped>``: ``pytest.skip`` or ``pytest.xfail``).
    """

    message: str
    text: str
    type: str = ""


@dataclass(frozen=True)
class CaseResult:
    """One ``<testcase>`` element as pytest's junitxml plugin writes it.

    ``classname`` and ``name`` are the attributes (see :func:`mangle`); ``time`` is in seconds
    (0.0 when absent, unparsable, negative or not finite). ``setup_error`` is an ``<error>``
    whose message does not start with ``failed on teardown`` (pytest: ``failed on setup with
    "..."``, ``collection failure``, ``internal error``); ``teardown_error`` one whose message
    does. ``skipped`` is a skip (type ``pytest.skip``) or an xfail (type ``pytest.xfail``). When
    an element repeats within one testcase, the first is kept. ``system_out`` / ``system_err``
    are the first ``<system-out>`` / ``<system-err>`` texts ('' if none).

    pytest writes a test that fails and then errors in teardown as TWO consecutive
    ``<testcase>`` elements with the same :attr:`key`: one with the ``<failure>``, one with the
    teardown ``<error>``.
    """

    classname: str
    name: str
    time: float
    failure: Detail | None = None
    setup_error: Detail | None = None
    teardown_error: Detail | None = None
    skipped: Detail | None = None
    system_out: str = ""
    system_err: str = ""

    @property
    def xfailed(self) -> bool:
        """True for an expected failure (``<skipped type="pytest.xfail">``)."""
        return self.skipped is not None and self.skipped.type == "pytest.xfail"

    @property
    def key(self) -> tuple[str, str]:
        """``(classname, name)``, what :func:`mangle` returns for the test's node id."""
        return (self.classname, self.name)


def parse_junit(data: bytes | str) -> list[CaseResult]:
    """All ``<testcase>`` elements of all ``<testsuite>``s, in document order.

    ``data`` is the file's content; bytes are decoded as the XML declaration says (UTF-8 when
    it says nothing). The root is ``<testsuites>`` (pytest >= 5.1) or a lone ``<testsuite>``;
    the cases of a nested ``<testsuite>`` follow its parent's own cases. Raises
    :class:`JUnitError` when the text is empty, truncated or not XML, declares a DTD or
    entities, or has another root element.
    """
    if not data.strip():
        raise JUnitError("the JUnit XML is empty")
    try:
        root = _defused_fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise JUnitError(_REFUSED) from exc
    except (ParseError, LookupError, UnicodeError) as exc:
        raise JUnitError(f"the JUnit XML is truncated or not XML: {_one_line(str(exc))}") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise JUnitError(
            f"the JUnit XML's root element is <{_one_line(root.tag)}>, "
            "not <testsuites> or <testsuite>"
        )
    if root.tag == "testsuite":  # junitparser < 5 would return the suite itself: wrap it here
        suites = root.makeelement("testsuites", {})
        suites.append(root)
        root = suites
    # junitparser annotates this parameter with its own Element class; it takes an ElementTree
    # element.
    junit = JUnitXml.fromroot(root)  # type: ignore[arg-type]
    return [_case_result(case) for suite in junit for case in suite]


def mangle(nodeid: str) -> tuple[str, str]:
    """``(classname, name)`` that pytest's junitxml plugin writes for a node id.

    The path (before the first ``::``) becomes dotted with a trailing ``.py`` dropped; the
    names after it are split on ``::`` up to the first ``[``, and the bracketed parameter id
    stays whole on the last name; the classname is everything but the last name, joined with
    dots, and characters XML cannot hold are written ``#xNN`` in the name, as pytest does.
    E.g. ``tests/test_x.py::TestC::test_a[1.5::x]`` -> ``('tests.test_x.TestC',
    'test_a[1.5::x]')``; ``tests/test_x.py::test_a`` -> ``('tests.test_x', 'test_a')``; a
    collector id ``tests/test_x.py`` -> ``('', 'tests.test_x')``.

    This is pytest 9's reading of node ids; pytest 7/8 split at the first ``[`` of the whole
    id, which differs only when the path itself holds a ``[``.
    """
    path, sep, rest = nodeid.partition("::")
    names = [path]
    if sep:
        head, bracket, params = rest.partition("[")
        names += head.split("::")
        if bracket:
            names[-1] += f"[{params.removesuffix(']')}]"
    names[0] = names[0].replace("/", ".")
    if names[0].endswith(".py"):
        names[0] = names[0][: -len(".py")]
    return ".".join(names[:-1]), _NOT_XML_CHAR.sub(_visual_escape, names[-1])


def _visual_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"#x{code:02X}" if code <= 0xFF else f"#x{code:04X}"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _seconds(case: TestCase) -> float:
    try:
        value = case.time
    except ValueError:
        return 0.0
    if value is None or not math.isfinite(value) or value < 0:
        return 0.0
    return float(value)


def _case_result(case: TestCase) -> CaseResult:
    found: dict[str, Detail] = {}
    for result in case.result:
        detail = Detail(result.message or "", result.text or "", result.type or "")
        if isinstance(result, Failure):
            slot = "failure"
        elif isinstance(result, Error):
            slot = "teardown" if detail.message.startswith(_TEARDOWN_PREFIX) else "setup"
        elif isinstance(result, Skipped):
            slot = "skipped"
        else:
            continue
        found.setdefault(slot, detail)
    return CaseResult(
        classname=case.classname or "",
        name=case.name or "",
        time=_seconds(case),
        failure=found.get("failure"),
        setup_error=found.get("setup"),
        teardown_error=found.get("teardown"),
        skipped=found.get("skipped"),
        system_out=case.system_out or "",
        system_err=case.system_err or "",
    )
