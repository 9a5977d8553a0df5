"""Iterative gap closure: snapshots, the guard, the loop and its session."""
