"""Shared fixtures: configs built from dicts (no files needed)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.conductor import Conductor
from sim.config import parse_config


def make_config(conductor=None, omega=1.0, bias=None, phonon_bath=None, **extra):
    d = {
        "conductor": conductor or {"kind": "double_dot"},
        "mode": {"omega": omega},
        "bias": bias or {"mu_L": 0.25, "mu_R": -0.25, "T_e": 0.1},
        "phonon_bath": phonon_bath or {"T": 0.1, "gamma": 0.05},
    }
    d.update(extra)
    return parse_config(d)


def random_conductor(rng: np.random.Generator, n: int, rank_L: int | None = None, scale: float = 0.3) -> Conductor:
    """Random Hermitian H and M, random positive semi-definite broadenings."""
    def herm():
        A = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        return (A + A.conj().T) / 2

    def psd(rank):
        B = rng.normal(size=(n, rank)) + 1j * rng.normal(size=(n, rank))
        return scale * B @ B.conj().T

    return Conductor(herm(), psd(rank_L or n), psd(n), 0.5 * herm())


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)
