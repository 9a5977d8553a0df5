def add(a, b):
    return a + b


def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be 0")
    return a / b


def power(a, b):
    if b < 0:
        return 1 / power(a, -b)
    result = 1
    for _ in range(b):
        result *= a
    return result
