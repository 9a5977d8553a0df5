def render(values):
    lines = []
    for value in values:
        lines.append(f"{value:>10}")
    return "\n".join(lines)
