"""Which rows of a crosscheck table carry no verdict, and why (shared by the one- and several-mode reports)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["not_compared", "not_compared_note"]

_WHY = ("outside its limit's range", "not computed", "not defined for the route", "no tolerance")


def not_compared(table: pd.DataFrame, reference: str = "rate_equation") -> pd.Series:
    """Why each row without a verdict was not compared (index: the table's; the reference route left out).

    Every row other than the reference with ``within`` missing: ``"outside its limit's range"``
    (``expected`` starts with ``not comparable``), ``"not computed"`` (a route that failed, e.g.
    the Fock cutoff cap), ``"not defined for the route"`` (no value, e.g. N for Landauer) or
    ``"no tolerance"``.
    """
    t = table[(table["route"] != reference) & table["within"].isna()]
    exp = t["expected"].fillna("").astype(str) if "expected" in t else pd.Series("", index=t.index)
    why = np.where(exp.str.startswith("not comparable"), _WHY[0],
                   np.where(exp.str.startswith("not computed"), _WHY[1],
                            np.where(~np.isfinite(t["value"].astype(float)), _WHY[2], _WHY[3])))
    return pd.Series(why, index=t.index, dtype=object)


def not_compared_note(table: pd.DataFrame, reference: str = "rate_equation") -> str:
    """`` (5 rows not compared: 4 outside their limit's range, 1 not defined for the route)``, or ``""``
    when every row has a verdict."""
    why = not_compared(table, reference)
    if why.empty:
        return ""
    counts = why.value_counts()
    parts = ", ".join((f"{counts[w]} " if len(counts) > 1 else "") + (w.replace("its", "their") if counts[w] > 1 else w)
                      for w in _WHY if w in counts)
    return f" ({len(why)} row{'s' if len(why) > 1 else ''} not compared: {parts})"
