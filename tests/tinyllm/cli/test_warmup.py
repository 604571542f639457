"""tinyllm/cli/warmup.py: the helper process compiles exactly the backward kernels this process
will call, this process then loads them from the cache, a failed helper only costs time, and
no helper outlives its parent."""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from autograd import kernels
from autograd.kernels.threads import cores
from tinyllm.cli import warmup
from tinyllm.cli.common import compile_kernels
from tinyllm.config import GPTConfig

VARIANTS = [GPTConfig(vocab_size=16),
            GPTConfig(vocab_size=16, pos="rope", norm="rmsnorm", mlp="swiglu", bias=False),
            GPTConfig(vocab_size=16, dropout=0.2)]  # shakespeare-char's: dropout's kernel too


def backward_calls(monkeypatch, step):
    """Run step() with every `kernels.*_backward` recording the Numba types of its arguments:
    -> [(kernel name, [types])], one entry a call. Types, layouts included, decide which
    compiled specialisation a call uses."""
    calls = []
    with monkeypatch.context() as patch:  # undone on return
        for name in [n for n in vars(kernels) if n.endswith("_backward")]:
            def record(*args, _kernel=getattr(kernels, name), _name=name, **kwargs):
                calls.append((_name, [numba.typeof(a) for a in args]))
                return _kernel(*args, **kwargs)
            patch.setattr(kernels, name, record)
        patch.setattr(kernels, "_backend", kernels.backend())
        step()
    return calls


def numba_step(config):
    kernels.use("numba")
    model, ids = warmup.tiny_model(config)
    model(ids, ids)[1].backward()


@pytest.mark.parametrize("config", VARIANTS, ids=["gpt2", "llama", "dropout"])
def test_the_helper_calls_the_backward_kernels_with_this_processs_types(config, monkeypatch):
    ours = backward_calls(monkeypatch, lambda: numba_step(config))
    helpers = backward_calls(monkeypatch, lambda: warmup.compile_backward(config))
    wanted = {"attention_backward", "cross_entropy_backward"} | (
        {"dropout_backward"} if config.dropout else set())
    assert {name for name, _ in ours} >= wanted
    assert helpers == ours


# Both this test's process and the helper leave attention to NumPy (Python imports
# sitecustomize at start-up): its cold compile alone takes 16 s, the other kernels ~4 s.
NO_ATTENTION = """
import autograd.kernels as k
k.attention_forward = k.attention.attention_forward_ref
k.attention_backward = k.attention.attention_backward_ref
"""

COLD_START = """
import json
from numba.core.registry import CPUDispatcher
from autograd.kernels import cross_entropy, gelu, layer_norm
from tinyllm import optim
from tinyllm.cli import warmup
from tinyllm.config import GPTConfig

pays = warmup.helper_pays()
how = warmup.compile_step(GPTConfig(vocab_size=16))
backward = [f for m in (cross_entropy, gelu, layer_norm) for n, f in vars(m).items()
            if isinstance(f, CPUDispatcher) and "backward" in n]
print(json.dumps(dict(pays=pays, how=how, hits=[sum(f.stats.cache_hits.values()) for f in
                      backward], misses=[sum(f.stats.cache_misses.values()) for f in backward],
                      optimizer=[str(s) for s in optim._adamw_flat.signatures])))
"""


@pytest.mark.skipif(cores() < 2, reason="a helper needs a second core")
def test_on_a_cold_cache_the_helpers_kernels_are_loaded_here(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_ATTENTION)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd()]))
    done = subprocess.run([sys.executable, "-c", COLD_START], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pays"] and result["how"] == "helped"
    assert all(result["hits"]) and not any(result["misses"])  # none compiled in this process
    assert result["optimizer"] == ["(Array(float32, 1, 'C', False, aligned=True), "
                                   "Array(float32, 1, 'C', False, aligned=True), "
                                   "Array(float32, 1, 'C', False, aligned=True), "
                                   "Array(float32, 1, 'C', False, aligned=True), "
                                   + ", ".join(["float64"] * 7) + ")"]  # AdamW.step's types


def test_the_cache_check_knows_the_dtype(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "_backend", kernels.backend())
    numba_step(GPTConfig(vocab_size=16))  # cached now, if it was not
    assert warmup.backward_cached(np.float32)
    assert not warmup.backward_cached(np.float16)  # never compiled: NumPy runs float16
    program = "import numpy as np; from tinyllm.cli import warmup; " \
              "print(warmup.backward_cached(np.float32))"
    cold = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)), check=True)
    assert cold.stdout.strip() == "False"


def test_a_failed_helper_leaves_its_share_to_this_process(monkeypatch, capsys):
    monkeypatch.setattr(warmup, "helper_pays", lambda: True)
    monkeypatch.setattr(warmup, "start_helper", lambda config: subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"], stdin=subprocess.PIPE))
    compile_kernels(GPTConfig(vocab_size=16))
    assert "the helper process failed, so this one compiled its share" in capsys.readouterr().out


def test_a_helper_never_outlives_its_parent():
    config = GPTConfig(vocab_size=16)
    helper = warmup.start_helper(config)
    helper.stdin.close()  # as when its parent dies: it exits before compiling anything
    assert helper.wait(timeout=30) == 1
    helper = warmup.start_helper(config)
    warmup.stop(helper)  # as on Ctrl-C
    assert helper.returncode is not None


def test_cache_saves_wait_for_the_lock_and_keep_every_entry(tmp_path):
    import fcntl
    import threading

    from numba.core.caching import IndexDataCacheFile

    unlocked = IndexDataCacheFile.save
    cache = IndexDataCacheFile(str(tmp_path), "kernel", source_stamp="stamp")
    cache.save("first", b"data 1")
    with open(tmp_path / "tinyllm-warmup.lock", "a") as held:  # another process's save
        fcntl.flock(held, fcntl.LOCK_EX)
        with warmup.cache_saves_locked():
            saver = threading.Thread(target=cache.save, args=("second", b"data 2"))
            saver.start()
            saver.join(0.3)
            assert saver.is_alive()  # waiting for the lock
            fcntl.flock(held, fcntl.LOCK_UN)
            saver.join(5)
    assert not saver.is_alive() and IndexDataCacheFile.save is unlocked
    assert cache.load("first") == b"data 1" and cache.load("second") == b"data 2"
