"""A list of seeds as a person types it ("0-7", "1,7", "0-3,7"): the parity-seed sweep's argument
(tools/parity_seeds.py), tested in tests/unit/test_drift_bound.py."""
from __future__ import annotations


def seed_list(text: str) -> list[int]:
    """Comma-separated seeds or inclusive ranges, in the order given."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out
