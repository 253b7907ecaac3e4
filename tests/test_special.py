"""Special functions against mpmath and limits."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from sim.special import bose, digamma, fermi, trigamma, x_bose

POINTS = [0.5 + 0.001j, 0.5 - 0.3j, 0.5 + 40j, 3 - 1000j, 0.5 + 1e-9j, 100 + 2j, 9.9 + 0.1j, 0.6 + 9.99j, 0.5 + 5j,
          1.7 - 3.2j, 2e6 + 1e3j]


@pytest.mark.parametrize("z", POINTS)
def test_polygamma_against_mpmath(z):
    assert abs(digamma(z) - complex(mp.digamma(z))) <= 2e-15 * abs(complex(mp.digamma(z)))
    assert abs(trigamma(z) - complex(mp.polygamma(1, z))) <= 2e-15 * abs(complex(mp.polygamma(1, z)))


def test_distributions_are_overflow_safe_and_step_at_zero_temperature():
    with np.errstate(all="raise"):
        assert fermi(1e4, 1e-3) == 0.0 and fermi(-1e4, 1e-3) == 1.0
        np.testing.assert_array_equal(fermi([-1.0, 0.0, 1.0], 0.0), [1.0, 0.5, 0.0])
        np.testing.assert_array_equal(bose([-1.0, 1.0], 0.0), [-1.0, 0.0])
        assert bose(1e4, 1e-3) == 0.0
        np.testing.assert_allclose(x_bose([0.0, 1e-12, -2.0, 2.0], [0.3, 0.3, 0.0, 0.0]), [0.3, 0.3, 2.0, 0.0])
    x = np.linspace(-3, 3, 13)
    x = x[x != 0]
    np.testing.assert_allclose(x_bose(x, 0.7), x / np.expm1(x / 0.7), rtol=1e-14)
