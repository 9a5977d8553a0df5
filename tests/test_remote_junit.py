"""Reading a remote pytest's JUnit XML: real files from real sessions, hostile or broken text."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from pytest_orchestrator.remote.junit import (
    CaseResult,
    Detail,
    JUnitError,
    mangle,
    parse_junit,
)

# Records every node id the session reports (tests and failed collectors), in order.
RECORDER = """
import json

SEEN = []


def pytest_runtest_logreport(report):
    if report.nodeid not in SEEN:
        SEEN.append(report.nodeid)


def pytest_collectreport(report):
    if report.failed:
        SEEN.append(report.nodeid)


def pytest_sessionfinish(session):
    path = session.config.rootpath / "nodeids.json"
    path.write_text(json.dumps(SEEN), encoding="utf-8")
"""

MIXED = """
import sys
import time

import pytest


@pytest.fixture
def broken():
    raise RuntimeError("setup exploded")


@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown exploded")


def test_pass():
    print("a passing test's output is not kept")


def test_fail():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    assert 1 + 1 == 3


def test_setup_error(broken):
    pass


def test_teardown_error(bad_teardown):
    pass


def test_fail_and_teardown_error(bad_teardown):
    assert False, "call failed"


def test_skip():
    pytest.skip("not today")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="should have failed", strict=True)
def test_xpass_strict():
    pass


@pytest.mark.xfail(reason="may pass")
def test_xpass_lenient():
    pass


@pytest.mark.parametrize("value", [1.5, "a::b"], ids=["1.5::x", "p.q"])
def test_param(value):
    assert value


class TestGroup:
    def test_method(self):
        time.sleep(0.06)
"""

MOD = "tests.test_mix"
MIXED_KEYS = [
    (MOD, "test_pass"),
    (MOD, "test_fail"),
    (MOD, "test_setup_error"),
    (MOD, "test_teardown_error"),
    (MOD, "test_fail_and_teardown_error"),  # the failure ...
    (MOD, "test_fail_and_teardown_error"),  # ... and the teardown error: two testcases
    (MOD, "test_skip"),
    (MOD, "test_xfail"),
    (MOD, "test_xpass_strict"),
    (MOD, "test_xpass_lenient"),
    (MOD, "test_param[1.5::x]"),
    (MOD, "test_param[p.q]"),
    (f"{MOD}.TestGroup", "test_method"),
]


@dataclass
class Session:
    """A finished pytest run: its JUnit file's bytes and the node ids it reported."""

    xml: bytes
    nodeids: list[str]
    pytester: pytest.Pytester


def run_session(
    pytester: pytest.Pytester, files: dict[str, str], *args: str, ini: str = ""
) -> Session:
    """Run pytest in a child process on ``files`` (paths under tests/) with the remote's options."""
    pytester.makeini(f"[pytest]\n{ini}")  # rootdir: node ids start with tests/
    pytester.makeconftest(RECORDER)
    for name, source in files.items():
        path = pytester.path / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        f"--junitxml={xml}",
        "-o",
        "junit_logging=all",
        "-o",
        "junit_log_passing_tests=false",
        "-p",
        "no:orchestrator",
        "-p",
        "no:cacheprovider",
        *args,
    )
    assert xml.is_file(), result.stdout.str()
    nodeids = json.loads((pytester.path / "nodeids.json").read_text(encoding="utf-8"))
    return Session(xml.read_bytes(), nodeids, pytester)


@pytest.fixture
def mixed(pytester: pytest.Pytester) -> Session:
    return run_session(pytester, {"test_mix.py": MIXED})


def by_name(cases: list[CaseResult]) -> dict[str, list[CaseResult]]:
    found: dict[str, list[CaseResult]] = {}
    for case in cases:
        found.setdefault(case.name, []).append(case)
    return found


def line_of(source: str, text: str) -> int:
    """1-based number of the line of ``source`` that contains ``text``."""
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def assert_one_line(message: str) -> None:
    assert message
    assert message.splitlines() == [message]
    assert message == message.strip()


# --- real sessions ---------------------------------------------------------------------------


def test_every_testcase_in_document_order_and_mangle_names_each(mixed: Session) -> None:
    cases = parse_junit(mixed.xml)

    assert [case.key for case in cases] == MIXED_KEYS
    assert len(mixed.nodeids) == 12  # the fail+teardown-error test is one node, two testcases
    assert {mangle(nodeid) for nodeid in mixed.nodeids} == set(MIXED_KEYS)
    assert mangle("tests/test_mix.py::test_param[1.5::x]") == (MOD, "test_param[1.5::x]")
    assert "tests/test_mix.py::test_param[1.5::x]" in mixed.nodeids
    # str input (already decoded) gives the same cases as the bytes
    assert parse_junit(mixed.xml.decode("utf-8")) == cases


def test_failures_and_their_output(mixed: Session) -> None:
    cases = by_name(parse_junit(mixed.xml))
    line = line_of(MIXED, "assert 1 + 1 == 3")

    [fail] = cases["test_fail"]
    assert fail.failure is not None
    assert fail.failure.message == "assert (1 + 1) == 3"
    assert fail.failure.type == ""
    assert ">       assert 1 + 1 == 3\nE       assert (1 + 1) == 3" in fail.failure.text
    assert fail.failure.text.endswith(f"tests/test_mix.py:{line}: AssertionError")
    assert (fail.setup_error, fail.teardown_error, fail.skipped) == (None, None, None)
    assert not fail.xfailed
    assert " Captured Out " in fail.system_out
    assert "\nto stdout\n" in fail.system_out
    assert "to stderr" not in fail.system_out
    assert " Captured Err " in fail.system_err
    assert "\nto stderr\n" in fail.system_err
    assert "to stdout" not in fail.system_err

    [xpass] = cases["test_xpass_strict"]
    assert xpass.failure == Detail(
        message="[XPASS(strict)] should have failed", text="[XPASS(strict)] should have failed"
    )
    assert xpass.skipped is None
    assert not xpass.xfailed


def test_setup_and_teardown_errors(mixed: Session) -> None:
    cases = by_name(parse_junit(mixed.xml))

    [setup] = cases["test_setup_error"]
    assert setup.setup_error is not None
    assert setup.setup_error.message == 'failed on setup with "RuntimeError: setup exploded"'
    assert "E       RuntimeError: setup exploded" in setup.setup_error.text
    assert setup.setup_error.type == ""
    assert (setup.failure, setup.teardown_error, setup.skipped) == (None, None, None)

    teardown_message = 'failed on teardown with "RuntimeError: teardown exploded"'
    [after_pass] = cases["test_teardown_error"]
    assert after_pass.teardown_error is not None
    assert after_pass.teardown_error.message == teardown_message
    assert "E       RuntimeError: teardown exploded" in after_pass.teardown_error.text
    assert (after_pass.failure, after_pass.setup_error) == (None, None)

    failed, then_teardown = cases["test_fail_and_teardown_error"]
    assert failed.failure is not None
    assert failed.failure.message == "AssertionError: call failed\nassert False"
    assert "E       AssertionError: call failed" in failed.failure.text
    assert (failed.setup_error, failed.teardown_error) == (None, None)
    assert then_teardown.failure is None
    assert then_teardown.teardown_error is not None
    assert then_teardown.teardown_error.message == teardown_message
    assert then_teardown.setup_error is None


def test_skips_xfails_and_passes(mixed: Session) -> None:
    cases = by_name(parse_junit(mixed.xml))
    skip_line = line_of(MIXED, 'pytest.skip("not today")')
    source = mixed.pytester.path / "tests" / "test_mix.py"

    [skip] = cases["test_skip"]
    assert skip.skipped == Detail(
        message="not today", text=f"{source}:{skip_line}: not today", type="pytest.skip"
    )
    assert not skip.xfailed
    assert skip.failure is None

    [xfail] = cases["test_xfail"]
    assert xfail.skipped == Detail(message="known bug", text="", type="pytest.xfail")
    assert xfail.xfailed
    assert (xfail.failure, xfail.system_out, xfail.system_err) == (None, "", "")

    # a passing test and a lenient XPASS are bare testcases (junit_log_passing_tests=false)
    for name in ("test_pass", "test_xpass_lenient", "test_param[p.q]"):
        [case] = cases[name]
        assert case == CaseResult(classname=MOD, name=name, time=case.time), name
        assert 0.0 <= case.time < 30.0
        assert not case.xfailed

    [slow] = cases["test_method"]
    assert slow.classname == f"{MOD}.TestGroup"
    assert 0.05 <= slow.time < 30.0


def test_collection_failure(pytester: pytest.Pytester) -> None:
    session = run_session(
        pytester,
        {
            "sub/test_broken.py": "import no_such_module_zz\n",
            "test_good.py": "def test_ok(): pass\n",
        },
        "--continue-on-collection-errors",
    )

    broken, good = parse_junit(session.xml)

    assert broken.key == ("", "tests.sub.test_broken")
    assert broken.setup_error is not None
    assert broken.setup_error.message == "collection failure"
    assert "No module named 'no_such_module_zz'" in broken.setup_error.text
    assert (broken.failure, broken.teardown_error, broken.skipped) == (None, None, None)
    assert good == CaseResult(classname="tests.test_good", name="test_ok", time=good.time)
    assert "tests/sub/test_broken.py" in session.nodeids
    assert [mangle(nodeid) for nodeid in session.nodeids] == [broken.key, good.key]


def test_mangle_escapes_what_xml_cannot_hold_like_pytest(pytester: pytest.Pytester) -> None:
    session = run_session(
        pytester,
        {
            "test_ids.py": (
                "import pytest\n"
                "IDS = ['bell\\x07', 'caf\\u00e9', 'del\\x7f']\n"
                "@pytest.mark.parametrize('v', [1, 2, 3], ids=IDS)\n"
                "def test_ids(v): pass\n"
            )
        },
        ini="disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n",
    )

    names = [case.name for case in parse_junit(session.xml)]

    assert names == ["test_ids[bell#x07]", "test_ids[café]", "test_ids[del#x7F]"]
    assert "tests/test_ids.py::test_ids[bell\x07]" in session.nodeids
    assert [mangle(nodeid)[1] for nodeid in session.nodeids] == names


def test_truncated_real_file(mixed: Session) -> None:
    for cut in (mixed.xml[: len(mixed.xml) // 2], mixed.xml[:-3]):
        with pytest.raises(JUnitError) as raised:
            parse_junit(cut)
        message = str(raised.value)
        assert_one_line(message)
        assert message.startswith("the JUnit XML is truncated or not XML: ")


# --- mangle ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("tests/test_x.py::TestC::test_a[1.5::x]", ("tests.test_x.TestC", "test_a[1.5::x]")),
        ("tests/test_x.py::test_a", ("tests.test_x", "test_a")),
        ("tests/test_x.py", ("", "tests.test_x")),
        ("test_x.py::test_a[a/b.py]", ("test_x", "test_a[a/b.py]")),
        ("a/b/test_x.py::TestC::TestD::test_a", ("a.b.test_x.TestC.TestD", "test_a")),
        ("tests/test_x.py::test_a[x[1]]", ("tests.test_x", "test_a[x[1]]")),
        ("tests/test_x.py::test_a[]", ("tests.test_x", "test_a[]")),
        ("README.txt::README.txt", ("README.txt", "README.txt")),
        ("tests/test_x.pyc::t", ("tests.test_x.pyc", "t")),
        ("t.py::test[\x00\ud800]", ("t", "test[#x00#xD800]")),
    ],
)
def test_mangle(nodeid: str, expected: tuple[str, str]) -> None:
    assert mangle(nodeid) == expected


# --- written by hand: layouts pytest can produce, and odd attributes -------------------------


def test_lone_testsuite_root_and_several_suites() -> None:
    lone = parse_junit('<testsuite><testcase classname="c" name="a" time="1.25"/></testsuite>')
    several = parse_junit(
        "<testsuites>"
        '<testsuite><testcase classname="c" name="a"/><testcase classname="c" name="b"/>'
        "</testsuite>"
        '<testsuite><testcase classname="d" name="c"/></testsuite>'
        "</testsuites>"
    )

    assert lone == [CaseResult(classname="c", name="a", time=1.25)]
    assert [case.key for case in several] == [("c", "a"), ("c", "b"), ("d", "c")]


@pytest.mark.parametrize(
    ("attribute", "seconds"),
    [
        ("", 0.0),
        ('time=""', 0.0),
        ('time="abc"', 0.0),
        ('time="nan"', 0.0),
        ('time="1e999"', 0.0),
        ('time="-1.5"', 0.0),
        ('time="0.125"', 0.125),
    ],
)
def test_time_in_seconds(attribute: str, seconds: float) -> None:
    [case] = parse_junit(f'<testsuite><testcase classname="c" name="a" {attribute}/></testsuite>')
    assert case.time == seconds


def test_errors_are_sorted_by_message_and_missing_attributes_are_empty() -> None:
    [case] = parse_junit(
        "<testsuite><testcase>"
        '<error message="internal error">boom</error>'
        '<error message="failed on teardown with &quot;x&quot;"/>'
        '<error message="failed on setup with &quot;late&quot;"/>'
        "<skipped/><failure>long &lt;repr&gt;</failure>"
        "</testcase></testsuite>"
    )

    assert case.key == ("", "")
    assert case.setup_error == Detail(message="internal error", text="boom")  # the first one
    assert case.teardown_error == Detail(message='failed on teardown with "x"', text="")
    assert case.skipped == Detail(message="", text="")
    assert not case.xfailed
    assert case.failure == Detail(message="", text="long <repr>")


def test_declared_encoding_is_honoured() -> None:
    data = (
        '<?xml version="1.0" encoding="iso-8859-1"?>'
        '<testsuite><testcase classname="c" name="caf\xe9"/></testsuite>'
    ).encode("latin-1")

    [case] = parse_junit(data)

    assert case.name == "café"


# --- hostile and broken text -----------------------------------------------------------------


def billion_laughs() -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE testsuites [\n'
        + "\n".join(entities)
        + '\n]>\n<testsuites><testsuite><testcase classname="&lol9;" name="x"/>'
        "</testsuite></testsuites>"
    )


def quadratic_blowup() -> str:
    return (
        f'<!DOCTYPE testsuites [<!ENTITY a "{"A" * 50_000}">]>'
        f'<testsuites><testsuite><testcase classname="{"&a;" * 20_000}" name="x"/>'
        "</testsuite></testsuites>"
    )


XXE = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<testsuites><testsuite><testcase classname="c" name="x">'
    "<failure>&xxe;</failure></testcase></testsuite></testsuites>"
)
PARAMETER_XXE = (
    '<!DOCTYPE testsuites [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]><testsuites/>'
)
PLAIN_DTD = (
    '<!DOCTYPE testsuites SYSTEM "http://junit.invalid/junit.dtd">'
    '<testsuites><testsuite><testcase classname="c" name="x"/></testsuite></testsuites>'
)


@pytest.mark.serial
@pytest.mark.parametrize(
    "document",
    [
        pytest.param(billion_laughs(), id="billion-laughs"),
        pytest.param(quadratic_blowup(), id="quadratic-blowup"),
        pytest.param(XXE, id="xxe-etc-passwd"),
        pytest.param(PARAMETER_XXE.encode(), id="parameter-entity-xxe"),
        pytest.param(PLAIN_DTD, id="plain-dtd"),
        pytest.param("<!DOCTYPE testsuites><testsuites/>", id="bare-doctype"),
    ],
)
def test_dtds_and_entities_are_refused_quickly(document: str | bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(JUnitError) as raised:
        parse_junit(document)
    elapsed = time.perf_counter() - start

    message = str(raised.value)
    assert_one_line(message)
    assert message == (
        "the JUnit XML declares a DTD or entities, which are refused "
        "(entity expansion is never evaluated)"
    )
    assert "root:" not in message
    assert elapsed < 1.0


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("collected 3 items\n\n3 passed in 0.01s\n", id="terminal-output"),
        pytest.param(b"\xff\xfe\x00\x01garbage", id="binary"),
        pytest.param("<testsuites><testsuite>", id="unclosed"),
        pytest.param('<testsuites><testcase name="&nbsp;"/></testsuites>', id="undefined-entity"),
        pytest.param(b'<?xml version="1.0" encoding="bogus"?><testsuites/>', id="bad-encoding"),
        pytest.param("<testsuites/>trailing", id="junk-after-root"),
        pytest.param("<testsuites>\ud800</testsuites>", id="lone-surrogate"),
    ],
)
def test_not_xml(document: str | bytes) -> None:
    with pytest.raises(JUnitError) as raised:
        parse_junit(document)

    message = str(raised.value)
    assert_one_line(message)
    assert message.startswith("the JUnit XML is truncated or not XML: ")
    assert len(message) > len("the JUnit XML is truncated or not XML: ")


@pytest.mark.parametrize("document", [b"", "", b" \n\t", "\n"])
def test_empty(document: str | bytes) -> None:
    with pytest.raises(JUnitError, match=r"^the JUnit XML is empty$"):
        parse_junit(document)


@pytest.mark.parametrize(
    ("document", "root"),
    [
        ("<html><body><testsuite/></body></html>", "<html>"),
        ('<testsuites xmlns="urn:x\nevil"><testsuite/></testsuites>', "<{urn:x evil}testsuites>"),
        ("<testcase classname='c' name='x'/>", "<testcase>"),
    ],
)
def test_wrong_root_is_named(document: str, root: str) -> None:
    with pytest.raises(JUnitError) as raised:
        parse_junit(document)

    message = str(raised.value)
    assert_one_line(message)
    assert message == f"the JUnit XML's root element is {root}, not <testsuites> or <testsuite>"


def test_an_empty_report_has_no_cases() -> None:
    assert parse_junit('<testsuites name="pytest tests"><testsuite tests="0"/></testsuites>') == []
