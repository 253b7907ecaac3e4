"""``ehp config``: print the resolved, validated config."""

from __future__ import annotations

import argparse

from .common import load

__all__ = ["register", "cmd_config"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    """Add the ``config`` sub-command."""
    with_config("config", "print the resolved, validated config").set_defaults(handler=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    from sim.config import to_toml

    print(to_toml(load(args).to_dict()), end="")
    return 0
