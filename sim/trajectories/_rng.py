r"""Per-trajectory random streams derived from one ``numpy.random.SeedSequence``.

Trajectory ``i`` of a run with seed ``s`` draws from the child
``SeedSequence(s).spawn(ntraj)[i]``, which is ``SeedSequence(s, spawn_key=(i,))``.
Its state words ``child.generate_state(4, numpy.uint64)`` seed a xoshiro256**
generator (Blackman and Vigna) that runs inside numba. Because the stream of a
trajectory depends only on ``(s, i)``, tables do not depend on the batch size,
the scheduler or the number of workers.

Creating a million ``SeedSequence`` objects in Python costs seconds, so
:func:`child_states` re-implements numpy's SeedSequence hashing (the
``hashmix``/``mix`` pool algorithm of ``numpy.random.bit_generator``) in numba;
``tests/test_trajectories.py`` checks it word for word against numpy.

Developer note: numba's on-disk cache (``cache=True``) of a kernel in another module
does not notice edits to the functions it inlines from here; after changing this
module delete ``sim/trajectories/__pycache__`` (or set ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["child_states", "child_state", "base_pool", "entropy_words", "child_seed_sequences", "uniform", "STATE_WORDS"]

#: uint64 words of xoshiro256** state per trajectory.
STATE_WORDS = 4
_POOL = 4
_M32 = np.uint64(0xFFFFFFFF)
_INIT_A = np.uint64(0x43B0D7E5)
_MULT_A = np.uint64(0x931E8875)
_INIT_B = np.uint64(0x8B51F9DD)
_MULT_B = np.uint64(0x58F38DED)
_MIX_L = np.uint64(0xCA01F9DD)
_MIX_R = np.uint64(0x4973F715)
_X16 = np.uint64(16)
_S32 = np.uint64(32)
_U0 = np.uint64(0)
_U1 = np.uint64(1)


def entropy_words(seed: int) -> NDArray[np.uint32]:
    """The run entropy of ``SeedSequence(seed)`` as uint32 words, zero-padded to the pool size.

    numpy pads the run entropy to the pool size (4 words) whenever a spawn key is present.
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    words = [0] if seed == 0 else []
    while seed > 0:
        words.append(seed & 0xFFFFFFFF)
        seed >>= 32
    words += [0] * max(0, _POOL - len(words))
    return np.array(words, dtype=np.uint32)


def child_seed_sequences(seed: int, start: int, count: int) -> list[np.random.SeedSequence]:
    """The children ``start .. start+count-1`` of ``SeedSequence(seed)`` (as ``spawn`` makes them)."""
    return [np.random.SeedSequence(seed, spawn_key=(i,)) for i in range(start, start + count)]


@njit(cache=True, inline="always")
def _hashmix(value, hc):
    value = (value ^ hc) & _M32
    hc = (hc * _MULT_A) & _M32
    value = (value * hc) & _M32
    value ^= value >> _X16
    return value, hc


@njit(cache=True, inline="always")
def _mix(x, y):
    r = (_MIX_L * x - _MIX_R * y) & _M32
    r ^= r >> _X16
    return r


@njit(cache=True)
def base_pool(entropy: NDArray[np.uint32]) -> tuple[NDArray[np.uint64], np.uint64]:
    """The SeedSequence pool and hash constant after mixing the run entropy, before the spawn key.

    ``mix_entropy`` hashes the words in order and the hash constant evolves independently of
    the values, so everything up to the spawn key is the same for every child: it is computed
    once per run, and :func:`child_state` adds only the child's key words.
    """
    n_run = entropy.shape[0]
    pool = np.zeros(_POOL, dtype=np.uint64)
    hc = _INIT_A
    for p in range(_POOL):
        v = np.uint64(entropy[p]) if p < n_run else _U0
        pool[p], hc = _hashmix(v, hc)
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                h, hc = _hashmix(pool[src], hc)
                pool[dst] = _mix(pool[dst], h)
    for src in range(_POOL, n_run):
        for dst in range(_POOL):
            h, hc = _hashmix(np.uint64(entropy[src]), hc)
            pool[dst] = _mix(pool[dst], h)
    return pool, hc


@njit(cache=True, inline="always")
def _out_word(pool, w, hb):
    v = pool[w % _POOL]
    v = (v ^ hb) & _M32
    hb = (hb * _MULT_B) & _M32
    v = (v * hb) & _M32
    v ^= v >> _X16
    return v, hb


@njit(cache=True, inline="always")
def child_state(pool0, hc0, i):
    """xoshiro256** state ``(s0, s1, s2, s3)`` of child ``i``: ``SeedSequence(seed, spawn_key=(i,))``.

    ``pool0, hc0 = base_pool(entropy_words(seed))``; the spawn key ``(i,)`` enters as its
    little-endian uint32 words (one word for ``i < 2**32``), then ``generate_state(4, uint64)``.
    """
    i = np.uint64(i)
    p0, p1, p2, p3 = pool0[0], pool0[1], pool0[2], pool0[3]
    hc = hc0
    lo = i & _M32
    hi = i >> _S32
    nkey = 2 if hi > _U0 else 1
    for q in range(nkey):
        v = lo if q == 0 else hi
        h, hc = _hashmix(v, hc)
        p0 = _mix(p0, h)
        h, hc = _hashmix(v, hc)
        p1 = _mix(p1, h)
        h, hc = _hashmix(v, hc)
        p2 = _mix(p2, h)
        h, hc = _hashmix(v, hc)
        p3 = _mix(p3, h)
    pool = (p0, p1, p2, p3)
    hb = _INIT_B
    a0, hb = _out_word(pool, 0, hb)
    a1, hb = _out_word(pool, 1, hb)
    a2, hb = _out_word(pool, 2, hb)
    a3, hb = _out_word(pool, 3, hb)
    a4, hb = _out_word(pool, 4, hb)
    a5, hb = _out_word(pool, 5, hb)
    a6, hb = _out_word(pool, 6, hb)
    a7, hb = _out_word(pool, 7, hb)
    s0 = a0 | (a1 << _S32)
    s1 = a2 | (a3 << _S32)
    s2 = a4 | (a5 << _S32)
    s3 = a6 | (a7 << _S32)
    if s0 == _U0 and s1 == _U0 and s2 == _U0 and s3 == _U0:  # xoshiro's one forbidden state (probability 2**-256)
        s0 = _U1
    return s0, s1, s2, s3


@njit(cache=True)
def child_states(entropy: NDArray[np.uint32], start: int, count: int) -> NDArray[np.uint64]:
    """xoshiro256** states of children ``start .. start+count-1``, shape ``(count, 4)``.

    Row ``k`` equals ``SeedSequence(seed, spawn_key=(start+k,)).generate_state(4, uint64)``
    where ``entropy = entropy_words(seed)``.
    """
    out = np.empty((count, STATE_WORDS), dtype=np.uint64)
    pool0, hc0 = base_pool(entropy)
    for k in range(count):
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = child_state(pool0, hc0, start + k)
    return out


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def next_u64(s0, s1, s2, s3):
    """One xoshiro256** step: returns ``(output, s0, s1, s2, s3)``."""
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(cache=True, inline="always")
def next_uniform(s0, s1, s2, s3):
    """A uniform double in ``[0, 1)`` (53 random bits) and the new state."""
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    return float(r >> np.uint64(11)) * (1.0 / 9007199254740992.0), s0, s1, s2, s3


@njit(cache=True)
def uniform(states: NDArray[np.uint64], n: int) -> NDArray[np.float64]:
    """``n`` uniforms per stream (rows of ``states``), without touching ``states``; for tests."""
    out = np.empty((states.shape[0], n))
    for k in range(states.shape[0]):
        s0, s1, s2, s3 = states[k, 0], states[k, 1], states[k, 2], states[k, 3]
        for j in range(n):
            out[k, j], s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
    return out


def _ziggurat_exp_tables() -> tuple[NDArray[np.uint64], NDArray[np.float64], NDArray[np.float64]]:
    """Marsaglia-Tsang (2000) ziggurat tables for the standard exponential, 256 layers, 53-bit.

    ``r = 7.69711747013104972`` is the right end of the base layer and
    ``v = 3.949659822581572e-3`` the common layer area (numpy uses the same layout).
    """
    m = 2.0**53
    de = 7.69711747013104972
    te = de
    ve = 3.949659822581572e-3
    ke = np.zeros(256, dtype=np.uint64)
    we = np.zeros(256)
    fe = np.zeros(256)
    q = ve / np.exp(-de)
    ke[0] = np.uint64((de / q) * m)
    ke[1] = 0
    we[0] = q / m
    we[255] = de / m
    fe[0] = 1.0
    fe[255] = np.exp(-de)
    for i in range(254, 0, -1):
        de = -np.log(ve / de + np.exp(-de))
        ke[i + 1] = np.uint64((de / te) * m)
        te = de
        fe[i] = np.exp(-de)
        we[i] = de / m
    return ke, we, fe


_KE, _WE, _FE = _ziggurat_exp_tables()
_ZIG_R = 7.69711747013104972


@njit(cache=True)
def next_exponential(s0, s1, s2, s3):
    """A standard exponential variate (mean 1) by the ziggurat method, and the new state.

    Exact in law (rejection sampling); about 95% of draws cost one 64-bit word and a
    table look-up, the rest fall back to ``exp``/``log1p``.
    """
    while True:
        r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        r >>= np.uint64(3)
        idx = r & np.uint64(0xFF)
        r >>= np.uint64(8)
        x = float(r) * _WE[idx]
        if r < _KE[idx]:
            return x, s0, s1, s2, s3
        if idx == 0:
            u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
            return _ZIG_R - math.log1p(-u), s0, s1, s2, s3
        u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
        if (_FE[idx - 1] - _FE[idx]) * u + _FE[idx] < math.exp(-x):
            return x, s0, s1, s2, s3
