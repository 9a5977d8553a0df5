"""Shopping cart."""

import os


class Cart:
    """Items with unit prices in cents."""

    def __init__(self):
        self.items = {}

    def add(self, name, price, quantity=1):
        if price < 0:
            raise ValueError("price must not be negative")
        self.items[name] = self.items.get(name, (price, 0))[0], self.items.get(name, (price, 0))[1] + quantity

    def total(self):
        return sum(price * quantity for price, quantity in self.items.values())

    def discounted_total(self, percent):
        # Seeded defect: the discount is applied twice.
        total = self.total()
        return round(total * (1 - percent / 100) * (1 - percent / 100))
