"""autograd/kernels/malloc.py: once the process is tuned, a step's freed arrays are reused
without page faults; importing autograd alone leaves malloc as it was."""
import os
import subprocess
import sys

import pytest

# A stand-in for a training step: ten 3 MiB arrays alive at once, then all freed. After a few
# warm-up steps, how many minor page faults does one more step cost per 4 KiB page it writes?
# (About 1 when its memory comes fresh from the kernel every time.)
STEPS = """
import resource
{setup}
import numpy as np
def step():
    arrays = [np.ones(3 << 18, dtype=np.float32) for _ in range(10)]
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (10 * (3 << 20) / 4096))
"""
TUNED = "import autograd.kernels; autograd.kernels.tune_process()"


def faults_per_page(setup, **env):
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTOGRAD_MALLOC", "TINYLLM_MALLOC")} | env
    out = subprocess.run([sys.executable, "-c", STEPS.format(setup=setup)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_arrays_are_reused_without_page_faults_once_tuned():
    from autograd.kernels import malloc

    if not malloc.keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    assert faults_per_page("") > 0.5  # malloc's defaults (shows that the test can fail)
    assert faults_per_page("import autograd.kernels") > 0.5  # importing changes nothing
    assert faults_per_page(TUNED) < 0.05
    assert faults_per_page(TUNED, AUTOGRAD_MALLOC="default") > 0.5  # the opt-out
    assert faults_per_page(TUNED, TINYLLM_MALLOC="default") > 0.5  # its deprecated spelling
