"""The ``ehp`` command line: one module per command (parse, call the public API, print).

:mod:`analysis.cli.app` builds the parser and runs a command; each sub-command lives in
its own module with a ``register(sub, with_config)`` function.
"""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
