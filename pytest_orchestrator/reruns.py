"""Reruns of failed tests (``--orchestrate-reruns=N``): a test that fails, then passes, is flaky.

A test whose call fails is run again, up to N more times, in the same session and worker
(setup and teardown included, as pytest-rerunfailures does). Each failed attempt is reported
with the outcome ``rerun`` (shown as ``R``, counted as ``rerun`` in pytest's summary), as
pytest-rerunfailures reports its reruns, so the tests dimension reads either plugin's reruns
the same way (:class:`pytest_orchestrator.auditors.tests.TestsAuditor`): a test whose last
attempt passed after a ``rerun`` is a ``flaky`` finding and counts as passed; one that never
passed is a failed test.

Only call failures are rerun: a failing setup or teardown is an error of the fixture, not a
flaky test. Never twice: when pytest-rerunfailures reruns (``--reruns N`` given, or a test
marked ``flaky``), it does, and this plugin does not. Under pytest-xdist each worker reruns
its own tests (the plugin is registered on every worker), so results equal a serial run's.
Under ``--orchestrate-exec`` this module's source is sent to the container and registered
there by the remote probe (``remote/bootstrap.py``): it must stay standard library and
pytest 7+ only, and run on Python 3.7.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from _pytest.runner import CallInfo, runtestprotocol

#: The outcome given to a failed attempt that is run again (pytest-rerunfailures' word).
RERUN = "rerun"


def reruns_of(config: pytest.Config) -> int:
    """``--orchestrate-reruns`` or the ini's ``orchestrate_reruns``: 0 and up.

    :raises pytest.UsageError: not a whole number from 0 to 100.
    """
    value = config.getoption("orchestrate_reruns", default=None)
    if value is None:
        value = config.getini("orchestrate_reruns") or "0"
    text = str(value).strip()
    if not text.isdigit() or int(text) > 100:
        raise pytest.UsageError(
            f"--orchestrate-reruns: {text!r} is not a whole number from 0 to 100"
        )
    return int(text)


def rerunfailures_active(config: pytest.Config) -> bool:
    """Whether pytest-rerunfailures is loaded and asked to rerun every test: its
    ``--reruns``, ``--force-reruns`` or ini ``reruns``, as it reads them itself."""
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return False
    if config.getoption("force_reruns", default=None) or config.getoption("reruns", default=0):
        return True
    try:
        return bool(int(config.getini("reruns") or 0))
    except (ValueError, TypeError):
        return True  # its own error: let it speak, never rerun twice


def _finish_teardown(
    item: pytest.Item, nextitem: pytest.Item | None, reports: list[pytest.TestReport]
) -> list[pytest.TestReport]:
    """Tear down what the next test does not need (the module's, the class's fixtures ...),
    which an attempt that might have run again left up; a failure there replaces the
    attempt's teardown report, as pytest reports one teardown per test."""
    state = item.session._setupstate
    call = CallInfo.from_call(lambda: state.teardown_exact(nextitem), when="teardown")
    if call.excinfo is None:
        return reports
    failed = pytest.TestReport.from_item_and_call(item, call)
    return [r for r in reports if r.when != "teardown"] + [failed]


class Reruns:
    """The ``pytest_runtest_protocol`` that reruns a failed call (see the module)."""

    def __init__(self, reruns: int) -> None:
        self.reruns = reruns

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if item.get_closest_marker("flaky") is not None and item.config.pluginmanager.hasplugin(
            "rerunfailures"
        ):
            return None  # pytest-rerunfailures reruns what it marks
        hook = item.ihook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for attempt in range(self.reruns + 1):
            last = attempt == self.reruns
            # an attempt that may run again tears down the test's own fixtures only: the
            # module's, the class's and the session's stay for the next attempt
            upto = nextitem if last else cast(Any, item.parent)
            reports = runtestprotocol(item, nextitem=upto, log=False)
            call_failed = any(
                r.when == "call" and r.failed and not hasattr(r, "wasxfail") for r in reports
            )
            other_failed = any(r.when != "call" and r.failed for r in reports)
            if not call_failed or other_failed or last:
                if not last:  # finish the teardown up to the next test, as pytest would
                    reports = _finish_teardown(item, nextitem, reports)
                for report in reports:
                    hook.pytest_runtest_logreport(report=report)
                break
            for report in reports:
                if report.when == "call":
                    report.__dict__["outcome"] = RERUN  # a word pytest's Literal lacks
                hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if str(report.outcome) == RERUN:
            return RERUN, "R", ("RERUN", {"yellow": True})
        return None
