"""autograd/kernels/malloc.py: a step's freed arrays are reused without page faults."""
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


def faults_per_page(setup, **env):
    env = {k: v for k, v in os.environ.items() if k != "TINYLLM_MALLOC"} | env
    out = subprocess.run([sys.executable, "-c", STEPS.format(setup=setup)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_arrays_are_reused_without_page_faults():
    from autograd.kernels import malloc

    if not malloc.keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    assert faults_per_page("") > 0.5  # malloc's defaults (shows that the test can fail)
    assert faults_per_page("import autograd") < 0.05
    assert faults_per_page("import autograd", TINYLLM_MALLOC="default") > 0.5  # the opt-out
