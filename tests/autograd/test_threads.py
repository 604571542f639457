"""autograd/kernels/threads.py and autograd.kernels.tune_process: when asked, both thread pools
get one size and their idle workers are told to sleep; a user's own settings are kept.

Each case tunes a fresh process (tuning is for the whole process, and OpenMP reads its settings
once), whose environment starts without the variables tune_process sets or reads."""
import json
import os
import subprocess
import sys

import pytest

from autograd import kernels
from autograd.kernels import threads

TUNE = """
import json, os, warnings
{before_numpy}
import numba
import autograd.kernels
from autograd.kernels import threads
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    autograd.kernels.tune_process({threads})
print(json.dumps({{
    "numba": numba.get_num_threads(),
    "blas": [get() for get in threads._openblas_functions("get_num_threads")],
    "environ": {{name: os.environ.get(name) for name in threads.SLEEP_WHEN_IDLE}},
    "warnings": [str(w.message) for w in caught]}}))
"""
EARLY_OPENBLAS = 'os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")'
linux_openblas = pytest.mark.skipif(not threads._openblas_functions("get_num_threads"),
                                    reason="needs NumPy's OpenBLAS, found through /proc")


def tune(threads_arg="", before_numpy=EARLY_OPENBLAS, **env):
    """Run tune_process(threads_arg) in a fresh process; what it then finds."""
    ours = set(threads.SLEEP_WHEN_IDLE) | {"AUTOGRAD_THREADS", "TINYLLM_THREADS"}
    env = {k: v for k, v in os.environ.items() if k not in ours} | env
    program = TUNE.format(before_numpy=before_numpy, threads=threads_arg)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


@linux_openblas
def test_tune_process_sizes_both_pools():
    report = tune("threads=1")
    assert report["numba"] == 1 and report["blas"] == [1] * len(report["blas"])
    assert report["warnings"] == []


@linux_openblas
def test_the_default_is_autograd_threads_else_every_core():
    one, default = tune(AUTOGRAD_THREADS="1"), tune()
    assert one["numba"] == one["blas"][0] == 1
    assert default["numba"] == default["blas"][0] == threads.cores()


def test_tinyllm_threads_is_a_deprecated_alias():
    report = tune(TINYLLM_THREADS="1")
    assert report["numba"] == 1
    assert report["warnings"] == ["TINYLLM_THREADS is deprecated: set AUTOGRAD_THREADS instead"]


def test_idle_workers_are_told_to_sleep():
    assert tune()["environ"] == threads.SLEEP_WHEN_IDLE


def test_the_users_own_settings_are_kept():
    report = tune(OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="8", GOMP_SPINCOUNT="0")
    assert report["environ"] == {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "8",
                                 "GOMP_SPINCOUNT": "0"}


@linux_openblas
def test_an_openblas_setting_made_after_numpy_loaded_it_is_warned_about():
    report = tune(before_numpy="")
    assert report["environ"]["OPENBLAS_THREAD_TIMEOUT"] == "4"  # for processes started later
    assert len(report["warnings"]) == 1 and "OPENBLAS_THREAD_TIMEOUT" in report["warnings"][0]


def test_a_bad_thread_count_is_the_users_error(monkeypatch):
    monkeypatch.setenv("AUTOGRAD_THREADS", "two")
    with pytest.raises(ValueError, match="AUTOGRAD_THREADS must be a whole number"):
        kernels._default_threads()
