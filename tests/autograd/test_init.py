"""autograd/__init__.py: importing autograd before NumPy configures OpenBLAS's idle workers."""
import os
import subprocess
import sys

SHOW = "import autograd, os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def run(env):
    out = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_idle_blas_workers_sleep_at_once():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    assert run(env) == "4"


def test_a_users_setting_is_kept():
    assert run(dict(os.environ, OPENBLAS_THREAD_TIMEOUT="20")) == "20"
