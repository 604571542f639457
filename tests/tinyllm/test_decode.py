"""tinyllm/decode.py: the compiled step gives the graph path's logits for every model variant,
float or int8 weights, one token or several at a time, across window slides and rewinds; greedy
decoding picks the same tokens; cases it does not cover fall back to the graph path."""
import itertools

import numpy as np
import pytest

from autograd import kernels, nn
from tinyllm import decode
from tinyllm.decode import fast_decoder
from tinyllm.generate import generate
from tinyllm.kv_cache import KVCache, extend
from tinyllm.quantize import quantize_model
from tinyllm.speculative import speculative_generate
from tests.tinyllm.tiny_models import tiny_gpt

VARIANTS = [dict(pos=pos, norm=norm, mlp=mlp, bias=bias) for pos, norm, mlp, bias in
            itertools.product(["learned", "rope", "sinusoidal"], ["layernorm", "rmsnorm"],
                              ["gelu", "swiglu"], [True, False])]
SEQ = np.random.default_rng(7).integers(0, 11, (1, 60))  # (1, L): 60 tokens, block_size 16


def assert_close(fast, graph, rtol):
    """Equal to rtol of the logits' scale: float32 sums in another order differ by ~1e-7."""
    scale = max(1.0, float(np.abs(graph).max()))
    np.testing.assert_allclose(fast, graph, rtol=0, atol=rtol * scale)


def both_paths(model, steps, rtol):
    """Prefill 3 tokens, then one at a time to steps: the compiled and the graph path on caches
    of their own, compared at every step; the window slides every 8 tokens past 16."""
    fast_cache, graph_cache = KVCache(model, 1), KVCache(model, 1)
    decoder = fast_decoder(model, fast_cache)
    assert decoder is not None
    decoder.extend(SEQ[:, :3])
    extend(model, graph_cache, SEQ[:, :3])
    for t in range(4, steps + 1):
        assert_close(decoder.extend(SEQ[:, :t]), extend(model, graph_cache, SEQ[:, :t]), rtol)
    assert fast_cache.seen == graph_cache.seen == steps
    assert fast_cache.length == graph_cache.length


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_every_step_equals_the_graph_path(variant, int8):
    model = tiny_gpt(block_size=16, n_embd=32, **variant)
    if int8:  # the compiled path streams the int8 copies, the graph the dequantized floats
        quantize_model(model)
    both_paths(model, 60, rtol=1e-5)


# widths that are multiples of nothing the loops step by: C % 4 != 0 or hs odd, F % 16 != 0
@pytest.mark.parametrize("pos, n_embd, mlp", [("learned", 30, "gelu"), ("sinusoidal", 30, "swiglu"),
                                              ("rope", 36, "swiglu")])
def test_awkward_widths(pos, n_embd, mlp):
    both_paths(tiny_gpt(pos, block_size=16, n_embd=n_embd, mlp=mlp), 30, rtol=1e-5)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_float64_models_agree_to_rounding(pos):
    model = tiny_gpt(pos, block_size=16, n_embd=32)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    if model.rope is not None:
        model.rope = tuple(t.astype(np.float64) for t in model.rope)
    both_paths(model, 40, rtol=1e-12)


# seeds whose greedy output does not settle into repeating one token
@pytest.mark.parametrize("seed, variant", [(2, dict(pos="learned")), (3, dict(pos="sinusoidal")),
                                           (1, dict(pos="rope", norm="rmsnorm", mlp="swiglu"))])
def test_greedy_tokens_are_the_same_over_120_steps_and_many_slides(seed, variant):
    model = tiny_gpt(seed=seed, block_size=16, n_embd=32, **variant)
    prompt = SEQ[:, :5]
    fast = [int(t[0]) for t in generate(model, prompt, 120, temperature=0)]
    graph = [int(t[0]) for t in generate(model, prompt, 120, temperature=0, fast=False)]
    assert fast == graph
    assert len(set(fast[-40:])) > 2  # still varied after a dozen slides


@pytest.mark.parametrize("variant", [dict(pos="learned"), dict(pos="sinusoidal", bias=False),
                                     dict(pos="rope", norm="rmsnorm", mlp="swiglu")],
                         ids=["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_several_tokens_at_a_time_equal_the_graph_path(variant, int8):
    """Chunks of 1-7 new tokens (a prompt, a verify pass) through both paths, across slides:
    every token's logits agree, and last=True gives the last token's alone."""
    model = tiny_gpt(block_size=16, n_embd=32, **variant)
    if int8:
        quantize_model(model)
    fast_cache, graph_cache = KVCache(model, 1), KVCache(model, 1)
    decoder = fast_decoder(model, fast_cache)
    sizes = np.random.default_rng(3).integers(1, 8, 20)
    ends = np.cumsum(sizes)[np.cumsum(sizes) <= SEQ.shape[1]]  # (chunks,) where each ends
    for i, end in enumerate(ends):
        graph = extend(model, graph_cache, SEQ[:, :end])  # (1, n, V)
        if i % 2:
            assert_close(decoder.extend(SEQ[:, :end], last=True), graph[:, -1:], 1e-5)
        else:
            assert_close(decoder.extend(SEQ[:, :end]), graph, 1e-5)
        assert (fast_cache.seen, fast_cache.length) == (graph_cache.seen, graph_cache.length)
    assert ends[-1] > 40  # past two slides of the 16-token window


def test_a_long_prompt_goes_through_the_graph_path(monkeypatch):
    model = tiny_gpt(block_size=64)
    calls = []
    compiled = decode.block_step
    monkeypatch.setattr(decode, "block_step", lambda *args: calls.append(1) or compiled(*args))
    long, short = SEQ[:, :decode.FEW_TOKENS + 1], SEQ[:, :decode.FEW_TOKENS]
    for prompt, blocks_run in ((long, 0), (short, model.config.n_layer)):
        cache, graph_cache = KVCache(model, 1), KVCache(model, 1)
        calls.clear()
        assert_close(fast_decoder(model, cache).extend(prompt),
                     extend(model, graph_cache, prompt), 1e-5)
        assert len(calls) == blocks_run


def test_steps_after_a_rewind_continue_from_the_kept_tokens():
    model = tiny_gpt("rope", block_size=16, n_embd=32)
    cache, graph_cache = KVCache(model, 1), KVCache(model, 1)
    decoder = fast_decoder(model, cache)
    decoder.extend(SEQ[:, :10])
    cache.rewind(3)  # as speculative decoding drops rejected drafts
    extend(model, graph_cache, SEQ[:, :7])
    assert_close(decoder.extend(SEQ[:, :8]), extend(model, graph_cache, SEQ[:, :8]), 1e-5)


def test_speculative_decoding_gives_the_same_tokens_either_way():
    target, draft = tiny_gpt(seed=0, block_size=16), tiny_gpt(seed=1, n_layer=1, block_size=16)
    runs = [[int(t[0]) for t in speculative_generate(target, draft, SEQ[:, :3], 30, k=3,
                                                     temperature=0, fast=fast)]
            for fast in (True, False)]
    assert runs[0] == runs[1]


def test_a_token_outside_the_vocabulary_is_refused():
    model = tiny_gpt()
    decoder = fast_decoder(model, KVCache(model, 1))
    decoder.extend(SEQ[:, :2])
    with pytest.raises(ValueError, match="token ids"):
        decoder.extend(np.array([[1, 2, 11]]))
    with pytest.raises(ValueError, match="token ids"):
        decoder.extend(np.array([[1, 2, 3, -1]]))  # one bad token among several


def test_cases_it_does_not_cover_get_no_decoder():
    model = tiny_gpt()
    assert fast_decoder(model, None) is None
    assert fast_decoder(model, KVCache(model, 2)) is None  # a batch
    training = tiny_gpt(dropout=0.1).train()
    assert fast_decoder(training, KVCache(training, 1)) is None
    lora = tiny_gpt()
    block = lora.transformer.h[0]
    block.attn.c_attn = nn.LoRALinear(block.attn.c_attn, rank=2)
    assert fast_decoder(lora, KVCache(lora, 1)) is None
    previous = kernels.backend()
    try:
        kernels.use("numpy")
        assert fast_decoder(model, KVCache(model, 1)) is None
    finally:
        kernels.use(previous)
