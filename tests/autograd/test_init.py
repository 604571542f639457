"""autograd/__init__.py: importing autograd changes nothing outside it. It writes no environment
variable and starts no thread pool (and leaves malloc alone: test_malloc.py); tuning the process
is autograd.kernels.tune_process's job (test_threads.py). It only reads AUTOGRAD_KERNELS."""
import json
import os
import subprocess
import sys

from autograd.kernels import threads

IMPORT_EVERYTHING = """
import json, os
before = dict(os.environ)
import autograd, autograd.functional, autograd.gradcheck, autograd.kernels, autograd.nn
import numba
try:
    numba.threading_layer()  # raises ValueError until something starts Numba's thread pool
    pool_started = True
except ValueError:
    pool_started = False
after = dict(os.environ)
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "pool_started": pool_started,
                  "backend": autograd.kernels.backend()}))
"""


def import_everything(**env):
    """Import every autograd module in a fresh process whose environment holds none of the
    variables autograd reads or (before) wrote, plus `env`; what the import did."""
    ours = set(threads.SLEEP_WHEN_IDLE) | {"AUTOGRAD_KERNELS", "TINYLLM_KERNELS"}
    env = {k: v for k, v in os.environ.items() if k not in ours} | env
    done = subprocess.run([sys.executable, "-W", "always", "-c", IMPORT_EVERYTHING], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout), done.stderr


def test_importing_autograd_changes_no_environment_variable_and_starts_no_pool():
    report, _ = import_everything()
    assert report["changed"] == []
    assert not report["pool_started"]  # so no thread count was set, and OpenMP's settings wait


def test_autograd_kernels_chooses_the_backend():
    report, stderr = import_everything(AUTOGRAD_KERNELS="numpy")
    assert report["backend"] == "numpy" and "deprecated" not in stderr


def test_tinyllm_kernels_is_a_deprecated_alias():
    report, stderr = import_everything(TINYLLM_KERNELS="numpy")
    assert report["backend"] == "numpy"
    assert "TINYLLM_KERNELS is deprecated: set AUTOGRAD_KERNELS instead" in stderr
