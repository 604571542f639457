"""tinyllm/hf.py: GPT-2 folders written here load, compute what GPT-2 computes, round-trip
bit-exactly, and every kind of bad folder fails fast with a clear HFError."""
import inspect
import json
import pickle
import shutil
import time
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tinyllm.hf as hf
from autograd import no_grad
from tinyllm.config import GPTConfig
from tinyllm.generate import generate
from tinyllm.hf import HFError, expected_tensors, is_hf_dir, load_gpt2, save_gpt2
from tinyllm.model import GPT
from tinyllm.tokenizer import BPETokenizer, CharTokenizer
from tinyllm.tokenizer.tiktoken_files import write_gpt2_files

TOK = BPETokenizer.train(inspect.getsource(hf), 330, special_tokens=["<|endoftext|>"])
SHAPE = dict(n_layer=2, n_head=2, n_embd=16, n_positions=64, vocab_size=TOK.vocab_size + 3)
EOT_ID = TOK.special_tokens["<|endoftext|>"]
TEXT = "def load_gpt2(path):\n    return model, tokenizer  # <- é"


def hf_config(**changes):
    """A config.json as transformers writes one for GPT-2, with our test shape."""
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05,
            "n_ctx": SHAPE["n_positions"], "resid_pdrop": 0.1, "embd_pdrop": 0.1,
            "attn_pdrop": 0.1, "bos_token_id": EOT_ID, "eos_token_id": EOT_ID, **SHAPE,
            **changes}


def gpt2_arrays(seed=0):
    """Random GPT-2 weights in the Hub's layout: no prefix, biases non-zero."""
    config = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=64,
                       vocab_size=SHAPE["vocab_size"])
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.3, shape).astype(np.float32)
            for name, shape in expected_tensors(config).items()}


def write_dir(folder, arrays=None, config=None, buffers=True):
    """A GPT-2 folder as the Hub has them: unprefixed names, causal-mask buffers, no head."""
    folder.mkdir(exist_ok=True)
    arrays = dict(gpt2_arrays() if arrays is None else arrays)
    T = SHAPE["n_positions"]
    for i in range(SHAPE["n_layer"] if buffers else 0):
        arrays[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, T, T), np.float32))
        arrays[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    save_file(arrays, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config() if config is None else config))
    ordinary = {i: b for i, b in TOK.vocab.items() if i not in TOK.special_tokens.values()}
    write_gpt2_files(folder / "vocab.json", folder / "merges.txt", ordinary, TOK.merges,
                     TOK.special_tokens)
    return folder


def reference_logits(arrays, ids):
    """GPT-2's forward pass from the paper (as picoGPT writes it), in float64, in plain NumPy:
    a check of our layout (Conv1D (in, out), q k v order in c_attn) that shares no code."""
    a = {k: v.astype(np.float64) for k, v in arrays.items()}
    H, T = SHAPE["n_head"], len(ids)

    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * a[name + ".weight"] + a[name + ".bias"]

    def linear(x, name):
        return x @ a[name + ".weight"] + a[name + ".bias"]

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    x = a["wte.weight"][ids] + a["wpe.weight"][:T]  # (T, C)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(SHAPE["n_layer"]):
        qkv = np.split(linear(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn"), 3, axis=-1)
        heads = []
        for q, k, v in zip(*(np.split(m, H, axis=-1) for m in qkv)):  # (T, hs) each
            w = q @ k.T / np.sqrt(q.shape[-1]) + mask
            w = np.exp(w - w.max(-1, keepdims=True))
            heads.append(w / w.sum(-1, keepdims=True) @ v)
        x = x + linear(np.hstack(heads), f"h.{i}.attn.c_proj")
        x = x + linear(gelu(linear(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")
    return ln(x, "ln_f") @ a["wte.weight"].T  # (T, V)


def logits_of(model, ids):
    with no_grad():
        return model(np.array([ids]))[0].data[0]


# --- loading ------------------------------------------------------------------------------


def test_loads_and_computes_gpt2s_logits(tmp_path):
    arrays = gpt2_arrays()
    model, tok = load_gpt2(write_dir(tmp_path / "gpt2", arrays))
    assert not model.training and model.config.tie_weights and model.config.dropout == 0.1
    ids = tok.encode(TEXT)
    assert ids == TOK.encode(TEXT) and tok.decode(ids) == TEXT
    np.testing.assert_allclose(logits_of(model, ids), reference_logits(arrays, ids),
                               atol=2e-4)


def test_greedy_samples_are_gpt2s(tmp_path):
    arrays = gpt2_arrays()
    model, tok = load_gpt2(write_dir(tmp_path / "gpt2", arrays))
    prompt = tok.encode("def ")
    ours = [int(t[0]) for t in generate(model, np.array([prompt]), 8, temperature=0)]
    theirs = list(prompt)
    for _ in range(8):
        theirs.append(int(reference_logits(arrays, theirs)[-1].argmax()))
    assert ours == theirs[len(prompt):]
    sampled = np.stack(list(generate(model, np.array([prompt]), 8, rng=np.random.default_rng(0))))
    assert sampled.shape == (8, 1) and sampled.max() < SHAPE["vocab_size"]


def test_prefixed_names_float16_and_a_stored_tied_head_load(tmp_path):
    arrays = {f"transformer.{k}": v.astype(np.float16) for k, v in gpt2_arrays().items()}
    arrays["lm_head.weight"] = arrays["transformer.wte.weight"]
    model, _ = load_gpt2(write_dir(tmp_path / "gpt2", arrays, buffers=False))
    state = model.state_dict()
    for name, value in arrays.items():
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], value.astype(np.float32))


def test_untied_head_round_trips(tmp_path):
    arrays = gpt2_arrays()
    arrays["lm_head.weight"] = arrays["wte.weight"][::-1].copy()
    model, tok = load_gpt2(write_dir(tmp_path / "a", arrays,
                                     config=hf_config(tie_word_embeddings=False)))
    assert not model.config.tie_weights
    np.testing.assert_array_equal(model.lm_head.weight.data, arrays["lm_head.weight"])
    save_gpt2(model, tok, tmp_path / "b")
    again, _ = load_gpt2(tmp_path / "b")
    ids = tok.encode(TEXT)
    np.testing.assert_array_equal(logits_of(again, ids), logits_of(model, ids))


# --- saving -------------------------------------------------------------------------------


def test_round_trip_is_bit_exact(tmp_path):
    arrays = gpt2_arrays()
    model, tok = load_gpt2(write_dir(tmp_path / "a", arrays))
    save_gpt2(model, tok, tmp_path / "b")
    saved = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert saved.keys() == {f"transformer.{k}" for k in arrays}  # tied: no lm_head.weight
    for name, value in arrays.items():
        np.testing.assert_array_equal(saved[f"transformer.{name}"], value)
    save_gpt2(*load_gpt2(tmp_path / "b"), tmp_path / "c")
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json",
                     "vocab.json"]
    for name in files:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_saved_config_is_what_gpt2config_reads(tmp_path):
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_embd=16, n_head=2))
    save_gpt2(model, TOK, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "gelu_new" and config["layer_norm_epsilon"] == 1e-5
    assert (config["n_positions"], config["n_embd"], config["n_layer"]) == (64, 16, 1)
    assert config["eos_token_id"] == config["bos_token_id"] == TOK.special_tokens["<|endoftext|>"]
    tok_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tok_config["eos_token"] == "<|endoftext|>" and tok_config["model_max_length"] == 64


def test_bias_free_model_exports_zero_biases_and_the_same_logits(tmp_path):
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_embd=16, n_head=2,
                          bias=False), rng=np.random.default_rng(0))
    save_gpt2(model, TOK, tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    biases = [k for k in saved if k.endswith(".bias")]
    assert len(biases) == 7 and all(not saved[k].any() for k in biases)
    again, _ = load_gpt2(tmp_path)
    ids = TOK.encode(TEXT)
    np.testing.assert_allclose(logits_of(again, ids), logits_of(model, ids), atol=1e-5)


@pytest.mark.parametrize("field, value", [("pos", "rope"), ("norm", "rmsnorm"),
                                          ("mlp", "swiglu")])
def test_models_gpt2_cannot_express_are_refused(tmp_path, field, value):
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_embd=16, n_head=2,
                          **{field: value}))
    with pytest.raises(HFError, match=f"GPTConfig.{field}='{value}'"):
        save_gpt2(model, TOK, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("tokenizer, message", [
    (CharTokenizer.from_text("abc"), "CharTokenizer"),
    (BPETokenizer({}, pattern="gpt4"), "pattern"),
    (TOK, f"{TOK.vocab_size} ids, more than the model's vocab_size=300")])
def test_tokenizers_gpt2_cannot_express_are_refused(tmp_path, tokenizer, message):
    model = GPT(GPTConfig(vocab_size=300, n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(HFError, match=message):
        save_gpt2(model, tokenizer, tmp_path)


# --- bad folders --------------------------------------------------------------------------


def test_is_hf_dir(tmp_path):
    assert is_hf_dir(write_dir(tmp_path / "gpt2"))
    assert not is_hf_dir(tmp_path) and not is_hf_dir(tmp_path / "gpt2" / "config.json")


@pytest.mark.parametrize("change, message", [
    (dict(activation_function="gelu"), "activation_function='gelu'"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06"),
    (dict(model_type="llama"), "model_type='llama'"),
    (dict(n_inner=100), "n_inner=100"),
    (dict(scale_attn_weights=False), "scale_attn_weights=False"),
    (dict(tie_word_embeddings=1), "tie_word_embeddings=1"),
    (dict(n_layer=True), "n_layer must be a positive integer"),
    (dict(n_head="2"), "n_head must be a positive integer"),
    (dict(n_embd=-16), "n_embd must be a positive integer"),
    (dict(n_head=3), "not divisible"),
    (dict(resid_pdrop=1.5), "resid_pdrop"),
])
def test_configs_our_gpt_cannot_be_are_refused(tmp_path, change, message):
    with pytest.raises(HFError, match=message):
        load_gpt2(write_dir(tmp_path / "gpt2", config=hf_config(**change)))


@pytest.mark.parametrize("change, message", [
    (dict(n_layer=10 ** 9), "n_layer=1000000000, but model.safetensors holds only"),
    (dict(n_embd=2 ** 30, n_head=1), r"wte.weight has shape \(333, 16\)"),
    (dict(vocab_size=10 ** 12), r"wte.weight has shape .* implies \(1000000000000, 16\)"),
    (dict(n_positions=10 ** 12), r"wpe.weight has shape \(64, 16\)")])
def test_absurd_sizes_fail_fast_without_allocating(tmp_path, change, message):
    folder = write_dir(tmp_path / "gpt2", config=hf_config(**change))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(HFError, match=message):
        load_gpt2(folder)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - start < 2 and peak < 20 << 20


def test_wrong_shape_missing_extra_and_duplicate_tensors(tmp_path):
    arrays = gpt2_arrays()
    bad = dict(arrays, **{"h.1.attn.c_attn.weight": arrays["h.1.attn.c_attn.weight"].T.copy()})
    with pytest.raises(HFError, match=r"h.1.attn.c_attn.weight has shape \(48, 16\).*\(16, 48\)"):
        load_gpt2(write_dir(tmp_path / "a", bad))
    missing = {k: v for k, v in arrays.items() if k != "h.1.mlp.c_fc.bias"}
    with pytest.raises(HFError, match="lacks 1 tensors.*h.1.mlp.c_fc.bias"):
        load_gpt2(write_dir(tmp_path / "b", missing))
    with pytest.raises(HFError, match="does not.*h.2.ln_1.weight"):
        load_gpt2(write_dir(tmp_path / "c", dict(arrays, **{"h.2.ln_1.weight": np.ones(16)})))
    twice = dict(arrays, **{"transformer.ln_f.bias": arrays["ln_f.bias"]})
    with pytest.raises(HFError, match="ln_f.bias is stored twice"):
        load_gpt2(write_dir(tmp_path / "d", twice))


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_other_dtypes_are_refused(tmp_path, dtype):
    arrays = gpt2_arrays()
    arrays["wpe.weight"] = arrays["wpe.weight"].astype(dtype)
    with pytest.raises(HFError, match="wpe.weight is (F64|I32); tinyllm reads float32"):
        load_gpt2(write_dir(tmp_path / "gpt2", arrays))


class _Payload:
    """Unpickling this creates a file: the proof a pickle was opened."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_a_pickle_is_never_opened(tmp_path):
    folder = write_dir(tmp_path / "gpt2")
    (folder / "model.safetensors").unlink()
    proof = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(proof)))
    assert is_hf_dir(folder)
    with pytest.raises(HFError, match="only pytorch_model.bin, a pickle.*model.safetensors only"):
        load_gpt2(folder)
    assert not proof.exists()


def test_corrupt_files_and_links_out_of_the_folder(tmp_path):
    folder = write_dir(tmp_path / "gpt2")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(HFError, match="not a readable safetensors file"):
        load_gpt2(folder)
    folder = write_dir(tmp_path / "b")
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(HFError, match="expected a JSON object"):
        load_gpt2(folder)
    (folder / "config.json").write_text("{oops")
    with pytest.raises(HFError, match="not valid JSON"):
        load_gpt2(folder)
    folder = write_dir(tmp_path / "c")
    shutil.move(folder / "vocab.json", tmp_path / "vocab.json")
    (folder / "vocab.json").symlink_to(tmp_path / "vocab.json")
    with pytest.raises(HFError, match="outside the folder"):
        load_gpt2(folder)


def test_bad_tokenizer_files(tmp_path):
    folder = write_dir(tmp_path / "a")
    lines = (folder / "merges.txt").read_text().splitlines()
    (folder / "merges.txt").write_text("\n".join([lines[0], *lines[2:], lines[1]]))
    with pytest.raises(HFError, match="not increasing"):
        load_gpt2(folder)
    folder = write_dir(tmp_path / "b", config=None)
    (folder / "vocab.json").write_text('{"a": "zero"}')
    with pytest.raises(HFError, match="not a GPT-2 tokenizer"):
        load_gpt2(folder)
    folder = write_dir(tmp_path / "c")
    (folder / "vocab.json").rename(folder / "tokenizer.json")
    with pytest.raises(HFError, match="holds tokenizer.json but no vocab.json"):
        load_gpt2(folder)


def test_a_tokenizer_larger_than_the_model_is_refused(tmp_path):
    arrays = gpt2_arrays()
    small = {k: v[:300] if k == "wte.weight" else v for k, v in arrays.items()}
    with pytest.raises(HFError, match=f"vocab.json has ids up to {EOT_ID}.*vocab_size=300"):
        load_gpt2(write_dir(tmp_path / "a", small, config=hf_config(vocab_size=300)))


# --- against transformers itself, where installed ----------------------------------------


def test_transformers_computes_the_same_both_ways(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    arrays = gpt2_arrays()
    model, tok = load_gpt2(write_dir(tmp_path / "hub", arrays))
    save_gpt2(model, tok, tmp_path / "ours")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(tmp_path / "ours")
    ids = tok.encode(TEXT)
    assert hf_tok(TEXT)["input_ids"] == ids
    with torch.no_grad():
        expected = theirs(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(logits_of(model, ids), expected, atol=1e-5)
    theirs.save_pretrained(tmp_path / "theirs")  # and back: what transformers writes loads
    for name in ("vocab.json", "merges.txt"):  # (transformers 5 writes tokenizer.json only)
        shutil.copy(tmp_path / "ours" / name, tmp_path / "theirs" / name)
    again, _ = load_gpt2(tmp_path / "theirs")
    np.testing.assert_allclose(logits_of(again, ids), expected, atol=1e-5)
