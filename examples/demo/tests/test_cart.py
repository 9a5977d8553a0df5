import pytest

from shop.cart import Cart
from shop.pricing import apply_rule


def test_empty_cart_totals_zero():
    assert Cart().total() == 0


def test_total_sums_quantities():
    cart = Cart()
    cart.add("apple", 50, 3)
    cart.add("pear", 70)
    assert cart.total() == 220


def test_negative_price_is_refused():
    with pytest.raises(ValueError):
        Cart().add("bad", -1)


def test_fixed_rule():
    assert apply_rule(100, {"kind": "fixed", "amount": 30}) == 70


def test_discount_is_applied_once():
    cart = Cart()
    cart.add("book", 1000)
    assert cart.discounted_total(10) == 900
