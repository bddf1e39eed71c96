"""The CPU thread policy hfdinterp sets before torch starts its threads."""

import os
import subprocess
import sys

import pytest

from hfdinterp.thread_policy import choose_thread_policy

PROBE = "import hfdinterp, os, torch; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@pytest.mark.parametrize("given,expected", [
    ({}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}),  # short spin, then sleep
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}),  # no spin count to outrank the user's policy
    ({"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ({"GOMP_SPINCOUNT": "0"}, {"GOMP_SPINCOUNT": "0"}),
])
def test_the_users_wait_policy_stands_and_ours_fills_in_only_when_none_is_given(given, expected):
    environ = {"PATH": "/bin", **given}
    choose_thread_policy(environ)
    assert {k: v for k, v in environ.items() if k in POLICY_VARIABLES} == expected


def test_the_policy_is_set_when_hfdinterp_is_imported_before_torch():
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["PASSIVE", "1000"]
