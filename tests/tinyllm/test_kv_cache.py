"""tinyllm/kv_cache.py and GPT.forward(cache=...): cached logits equal a full forward pass at
every position for every position scheme, inside the window and after it slides; rewinding."""
import numpy as np
import pytest

from tinyllm.kv_cache import KVCache, extend
from tests.tinyllm.tiny_models import tiny_gpt

POSITIONS = ["learned", "rope", "sinusoidal"]
SEQ = np.random.default_rng(7).integers(0, 11, (2, 40))  # (B, T) a batch of two sequences


def assert_close(cached, full):
    """Equal to 1e-5 of the logits' scale: float32 sums in another order differ by ~1e-7."""
    scale = max(1.0, float(np.abs(full).max()))
    np.testing.assert_allclose(cached, full, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("variant", [dict(), dict(norm="rmsnorm", mlp="swiglu")])
@pytest.mark.parametrize("pos", POSITIONS)
def test_prefill_then_steps_equal_the_full_forward_at_every_position(pos, variant):
    model = tiny_gpt(pos, **variant)  # block_size 8
    full = model(SEQ[:, :8])[0].data  # (B, 8, V)
    cache = KVCache(model, 2)
    assert_close(extend(model, cache, SEQ[:, :3]), full[:, :3])  # prefill: every position
    for t in range(4, 9):  # then one token at a time up to block_size
        assert_close(extend(model, cache, SEQ[:, :t])[:, -1], full[:, t - 1])
    assert cache.length == cache.seen == 8


@pytest.mark.parametrize("pos, n_layer", [("learned", 2), ("sinusoidal", 2), ("rope", 1)])
def test_after_the_window_slides_logits_equal_rerunning_the_window(pos, n_layer):
    # learned and sinusoidal recompute the kept half; rope rotates the kept keys, which is
    # exact for one layer (deeper layers remember evicted tokens, see kv_cache.py)
    model = tiny_gpt(pos, n_layer=n_layer)
    cache = KVCache(model, 2)
    extend(model, cache, SEQ[:, :5])
    lengths = []
    for t in range(6, 41):
        cached = extend(model, cache, SEQ[:, :t])[:, -1]  # (B, V)
        window = SEQ[:, t - cache.length:t]  # the tokens the cache holds
        assert_close(cached, model(window)[0].data[:, -1])
        lengths.append(cache.length)
    assert min(lengths) == 5 and max(lengths) == 8  # slid to block_size // 2 = 4, plus one


def test_a_prompt_longer_than_the_window_is_prefilled_in_slides():
    model = tiny_gpt("learned")
    cache = KVCache(model, 2)
    logits = extend(model, cache, SEQ[:, :19])  # (B, 19, V)
    assert logits.shape == (2, 19, 11) and cache.seen == 19
    # windows [0, 8), then [4, 12), [8, 16), [12, 19): the last position sees tokens 12..18
    assert_close(logits[:, -1], model(SEQ[:, 12:19])[0].data[:, -1])
    assert_close(logits[:, :8], model(SEQ[:, :8])[0].data)


@pytest.mark.parametrize("pos", POSITIONS)
def test_rewind_forgets_the_newest_tokens(pos):
    model = tiny_gpt(pos)
    cache = KVCache(model, 2)
    extend(model, cache, SEQ[:, :7])
    cache.rewind(3)
    assert cache.length == cache.seen == 4
    other = np.concatenate([SEQ[:, :4], SEQ[:, 20:23]], axis=1)  # (B, 7) a different ending
    assert_close(extend(model, cache, other), model(other)[0].data[:, 4:])
    with pytest.raises(ValueError, match="cannot rewind"):
        cache.rewind(8)


def test_the_cache_refuses_positions_past_block_size():
    model = tiny_gpt("learned")
    cache = KVCache(model, 2)
    model(SEQ[:, :6], cache=cache)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(SEQ[:, 6:9], cache=cache)


def test_training_forward_is_unchanged_by_the_cache_argument():
    model = tiny_gpt("rope").train()
    logits, loss = model(SEQ[:, :8], SEQ[:, 1:9])
    assert loss.requires_grad  # the graph is built as before: no cache, no extend
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
