"""sim.progress: bars and the notice for slow steps without a count (numba compiling on a first run)."""

from __future__ import annotations

import time

from sim.progress import progress_enabled, slow_step


def test_slow_step_says_what_it_does_only_when_slow(capsys):
    with slow_step("compiling", True, after=0.02):
        time.sleep(0.2)
    err = capsys.readouterr().err
    assert "compiling ..." in err and "compiling: done in" in err
    with slow_step("compiling", True, after=5.0):
        pass
    assert capsys.readouterr().err == ""


def test_slow_step_is_silent_without_progress(capsys):
    with slow_step("compiling", False, after=0.0):
        time.sleep(0.05)
    assert capsys.readouterr().err == ""
    assert progress_enabled(True) and not progress_enabled(False)
