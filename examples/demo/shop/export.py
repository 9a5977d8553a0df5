"""CSV export of a cart; seeded defect: no test imports this module."""

import csv
import io


def to_csv(cart):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["item", "price", "quantity"])
    for name, (price, quantity) in sorted(cart.items.items()):
        writer.writerow([name, price, quantity])
    return buffer.getvalue()
