"""The CPU thread policy hfdinterp sets before torch starts its threads."""

import os
import subprocess
import sys

import pytest

PROBE = "import hfdinterp, os, torch; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize("given,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_threads_sleep_at_barriers_unless_told_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected
