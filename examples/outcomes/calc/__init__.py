"""A tiny calculator whose tests show every outcome pytest has."""
