"""A tiny shop: a cart with prices and discounts."""
