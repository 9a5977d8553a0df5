import pytest

from calc.ops import add, divide, power


def test_add():
    assert add(2, 3) == 5


def test_divide_fails():
    print("dividing 1 by 3")
    assert divide(1, 3) == 0.3


@pytest.mark.skip(reason="not on this platform")
def test_skipped():
    pass


@pytest.mark.xfail(reason="rounding is known to be off")
def test_expected_failure():
    assert divide(1, 3) == 0.3


@pytest.mark.parametrize("a, b", [(1, 2), (2.5, 1)], ids=["ints", "1.5::x"])
def test_add_params(a, b):
    assert add(a, b) == a + b


class TestPower:
    def test_square(self):
        assert power(3, 2) == 9

    @pytest.mark.slow
    def test_big(self):
        assert power(2, 10) == 1024


@pytest.fixture
def broken_setup():
    raise RuntimeError("database is down")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("cleanup failed")


def test_setup_error(broken_setup):
    pass


def test_teardown_error(broken_teardown):
    assert add(1, 1) == 2


@pytest.mark.xfail(reason="was broken once")
def test_unexpectedly_fixed():
    assert add(1, 1) == 2
