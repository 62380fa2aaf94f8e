"""The Mann-Whitney z of bench/timing.py: its sign and size, against values worked out by hand from the
normal approximation with the tie correction, and against the definition of U by pairs.
Run: .venv/bin/python -m pytest bench/test_timing.py (after python3 tasks.py bench has installed scipy)."""

import math
import random

import pytest

from bench.timing import mann_whitney_z

RNG = random.Random(3)
ROUNDED_A = [round(RNG.gauss(5, 1), 1) for _ in range(60)]
ROUNDED_B = [round(RNG.gauss(5.4, 1), 1) for _ in range(70)]


@pytest.mark.parametrize(("a", "b", "z"), [
    ([1, 2, 2, 3, 4, 4, 4, 7], [2, 3, 3, 5, 6, 6, 8, 9, 9], -1.747103052858283),  # ties across samples
    ([0.9, 1.4, 2.2, 3.1, 3.3], [1.0, 1.6, 2.5, 2.9, 4.0, 4.4], -0.7302967433402213),  # no ties
    (ROUNDED_A, ROUNDED_B, -2.967690501395291),  # many ties, as timings rounded would have
])
def test_z_as_scipy_gives_it(a, b, z):
    assert mann_whitney_z(a, b) == pytest.approx(z, abs=1e-9)
    assert mann_whitney_z(b, a) == pytest.approx(-z, abs=1e-9)


def test_u_is_the_count_of_pairs():
    rng = random.Random(11)
    a = [rng.randint(0, 20) for _ in range(40)]
    b = [rng.randint(3, 25) for _ in range(33)]
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    z = mann_whitney_z(a, b)
    # Recover U from z with the same variance: only the rank sum is under test here.
    n1, n2, values = len(a), len(b), a + b
    n = n1 + n2
    ties = sum(values.count(v) ** 3 - values.count(v) for v in set(values))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    assert z * sigma + n1 * n2 / 2 == pytest.approx(u)


def test_equal_samples_and_empty_ones_give_zero():
    assert mann_whitney_z([1.0] * 5, [1.0] * 7) == 0.0
    assert mann_whitney_z([], [1.0]) == 0.0
    assert mann_whitney_z([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(0.0)
