"""Shared helpers of the command-line handlers: config loading and number printing."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.config import Config

__all__ = ["load", "num", "print_json", "add_overwrite"]


def load(args: argparse.Namespace) -> Config:
    """The validated config named by ``args.config`` with the ``--set`` overrides."""
    from sim.config import load_config

    return load_config(args.config, args.set or ())


def num(v) -> str:
    """A number for a text table: ``-`` for missing or non-finite, no ``-0``."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v + 0.0:.6g}"  # + 0.0: no "-0"


def print_json(d) -> None:
    """JSON on stdout (non-finite numbers must already be ``None``)."""
    print(json.dumps(d, indent=2, allow_nan=False))


def add_overwrite(q: argparse.ArgumentParser, help_: str) -> None:
    """``--overwrite`` and ``--allow-version-change``: the two ways past a run directory that holds another run.

    ``--allow-version-change`` lets a resume continue a run that another ehp-sim version wrote
    (:func:`sim.io.versions_may_change`; :func:`analysis.cli.app.main` applies it).
    """
    q.add_argument("--overwrite", action="store_true", help=help_)
    q.add_argument("--allow-version-change", action="store_true",
                   help="resume a run that another ehp-sim version wrote (both versions are recorded)")
