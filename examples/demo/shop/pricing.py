"""Price rules read from configuration text."""


def parse_rule(text):
    # Seeded defect for bandit (B307): eval() of configuration text.
    return eval(text)


def apply_rule(price, rule):
    if rule.get("kind") == "fixed":
        return max(price - rule["amount"], 0)
    if rule.get("kind") == "percent":
        return round(price * (100 - rule["amount"]) / 100)
    return price
