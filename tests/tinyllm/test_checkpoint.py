"""tinyllm/checkpoint.py: round trip, tied weights stored once, durable atomic writes, and every
kind of damaged or hostile file refused with a one-line CheckpointError before anything large is
allocated."""
import dataclasses
import doctest
import io
import itertools
import json
import os
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinyllm.checkpoint as checkpoint_module
from tinyllm.npz import remove_orphaned_temps
from tinyllm.checkpoint import (CheckpointError, load_checkpoint,
                                save_checkpoint, validate_model_state)
from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.finetune.lora import LoRASpec
from tinyllm.model import GPT, expected_shapes
from tinyllm.optim import AdamW, param_groups
from tinyllm.tokenizer import CharTokenizer

TINY = dict(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)
TOKENIZER = CharTokenizer.from_text("hello world!")  # 9 characters, fits vocab_size 12


def _run_state(config=None, seed=0):
    """(model, optimizer) of a tiny GPT after one AdamW step, so the moments are not zero."""
    model = GPT(config or GPTConfig(**TINY), np.random.default_rng(seed))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    optimizer.step()
    return model, optimizer


def save(path, config=None, meta=None):
    model, optimizer = _run_state(config)
    meta = {"model_config": dataclasses.asdict(model.config), "step": 3,
            "nested": {"a": [1, 2]}} | (meta or {})
    save_checkpoint(path, model.state_dict(), optimizer.state_dict(), meta, TOKENIZER)
    return model, optimizer


def tamper(path, arrays=None, meta=None, config=None, drop=()):
    """Rewrite a saved checkpoint as a hostile one: members replaced or added (`arrays`, named
    as in the archive), fields of its JSON (`meta`) or of its model config (`config`) changed,
    members in `drop` removed. np.savez, so the archive itself stays well formed."""
    with np.load(path) as f:
        content = {k: f[k] for k in f.files if k not in drop}
    stored = json.loads(content["meta"].tobytes())
    stored["model_config"] |= config or {}
    stored |= meta or {}
    content["meta"] = np.frombuffer(json.dumps(stored).encode(), dtype=np.uint8)
    np.savez(path, **(content | (arrays or {})))


def refused(path, match=None):
    """The CheckpointError that loading `path` raises, checked to be one line naming the file."""
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 500
    return message


def test_docstring_examples():
    assert doctest.testmod(checkpoint_module, optionflags=doctest.ELLIPSIS).failed == 0


def test_round_trip(tmp_path):
    model, optimizer = save(tmp_path / "c.npz")
    state, optim, meta, tok = load_checkpoint(tmp_path / "c.npz")
    twin = GPT(GPTConfig(**meta["model_config"]))
    twin.load_state_dict(state)
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    resumed = AdamW(param_groups(twin, 0.1), lr=1.0)
    resumed.load_state_dict(optim)
    assert resumed.t == 1 and resumed.lr == optimizer.lr
    np.testing.assert_array_equal(resumed.v[3], optimizer.v[3])
    assert meta["step"] == 3 and meta["nested"] == {"a": [1, 2]}
    assert tok.decode(tok.encode("hello")) == "hello"


def test_tied_weights_are_stored_once_and_loaded_under_both_names(tmp_path):
    model, _ = save(tmp_path / "c.npz")
    names = zipfile.ZipFile(tmp_path / "c.npz").namelist()
    assert "model.transformer.wte.weight.npy" in names
    assert "model.lm_head.weight.npy" not in names
    state = load_checkpoint(tmp_path / "c.npz")[0]
    np.testing.assert_array_equal(state["lm_head.weight"], model.lm_head.weight.data)
    save(tmp_path / "untied.npz", GPTConfig(**TINY, tie_weights=False))
    assert "model.lm_head.weight.npy" in zipfile.ZipFile(tmp_path / "untied.npz").namelist()


def test_version_1_files_with_both_copies_load_only_if_the_copies_agree(tmp_path):
    path = tmp_path / "c.npz"
    model, _ = save(path)
    wte = model.transformer.wte.weight.data
    tamper(path, arrays={"model.lm_head.weight": wte.copy()}, meta={"format_version": 1})
    np.testing.assert_array_equal(load_checkpoint(path)[0]["lm_head.weight"], wte)
    # different copies: which one a model got used to depend on the order of a set
    tamper(path, arrays={"model.lm_head.weight": wte + 1})
    refused(path, "tied weights lm_head.weight and transformer.wte.weight differ")


def _lora_run(path, spec):
    """Save a LoRA fine-tuning run's checkpoint: the adapted model, AdamW over the adapters."""
    model = GPT(GPTConfig(**TINY), np.random.default_rng(0))
    spec.adapt(model, np.random.default_rng(1))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3)
    meta = {"model_config": dataclasses.asdict(model.config), "lora": spec.to_dict()}
    save_checkpoint(path, model.state_dict(), optimizer.state_dict(), meta, TOKENIZER)
    return model


def test_a_lora_run_round_trips_with_its_adapters(tmp_path):
    path = tmp_path / "c.npz"
    model = _lora_run(path, LoRASpec(rank=2, targets=("c_attn", "mlp.c_proj")))
    state, optim, meta, _ = load_checkpoint(path)
    assert state["transformer.h.0.attn.c_attn.lora_A"].shape == (8, 2)
    assert state["transformer.h.0.mlp.c_proj.lora_B"].shape == (2, 8)
    assert "transformer.h.0.attn.c_proj.lora_A" not in state  # attn.c_proj is not a target
    assert len(optim) == 2 + 2 * 4  # t, lr and two moments for each of the four adapters
    np.testing.assert_array_equal(state["transformer.h.0.attn.c_attn.lora_A"],
                                  model.transformer.h[0].attn.c_attn.lora_A.data)
    tamper(path, meta={"lora": dict(meta["lora"], rank=3)})
    refused(path, "shape")
    tamper(path, meta={"lora": dict(meta["lora"], rank=9)})  # more than the layers' width 8
    refused(path, "rank")
    tamper(path, meta={"lora": None}, drop=["model.transformer.h.0.attn.c_attn.lora_A"])
    refused(path, "lora")


@pytest.mark.parametrize("pos, block_size", [("learned", 10**7), ("rope", 10**7),
                                             ("sinusoidal", 10**12), ("learned", 10**12)])
def test_a_huge_block_size_is_refused_before_anything_is_built(tmp_path, pos, block_size):
    # issue 15: block_size = 10**7 built a 4 GB model in 17 s before a shape check failed
    path = tmp_path / "c.npz"
    save(path, GPTConfig(**TINY, pos=pos))
    tamper(path, config={"block_size": block_size})
    tracemalloc.start()
    start = time.perf_counter()
    refused(path, "block_size")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - start < 2.0 and peak < 20 * 2**20


def test_rope_tables_are_capped_even_when_the_block_size_is_allowed(tmp_path):
    path = tmp_path / "c.npz"
    save(path, GPTConfig(**TINY, pos="rope"))
    tamper(path, config={"block_size": 2**20, "n_embd": 64})
    assert checkpoint_module.MAX_TABLE_SIZE < 2**20 * 64 <= checkpoint_module.MAX_BLOCK_SIZE * 64
    refused(path, "rope tables")


@pytest.mark.parametrize("change", [
    {"block_size": "8"}, {"block_size": 8.0}, {"n_layer": True}, {"n_embd": -8},
    {"n_head": 3}, {"vocab_size": 10**30}, {"n_layer": 10**9}, {"dropout": "0"},
    {"pos": "absolute"}, {"bias": 1}, {"bogus_field": 1}, {"n_embd": 16}])
def test_a_model_config_of_the_wrong_type_or_size_is_refused(tmp_path, change):
    path = tmp_path / "c.npz"
    save(path)
    tamper(path, config=change)
    refused(path, "model_config|fit|shape|n_layer")


def test_a_missing_model_config_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    tamper(path, meta={"model_config": None})
    refused(path, "model_config is missing")
    with pytest.raises(CheckpointError, match="model_config"):
        save_checkpoint(path, {}, {}, {}, TOKENIZER)


def test_weights_must_match_the_config_name_for_name_and_shape_for_shape(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    ln = "model.transformer.ln_f.weight"
    for arrays, drop, match in [({ln: np.ones(7, np.float32)}, (), "shape"),
                                ({ln: np.ones(8, np.int32)}, (), "not a float"),
                                ({"model.extra.weight": np.ones(8, np.float32)}, (), "extra"),
                                ({}, (ln + ".npy",), "missing transformer.ln_f.weight"),
                                ({"surprise": np.ones(1)}, (), "unexpected members")]:
        save(path)
        tamper(path, arrays=arrays, drop=[d[:-4] for d in drop])
        refused(path, match)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, bad):
    path = tmp_path / "c.npz"
    model, _ = save(path)
    w = model.transformer.h[0].attn.c_proj.weight.data.copy()
    w[1, 2] = bad
    tamper(path, arrays={"model.transformer.h.0.attn.c_proj.weight": w})
    refused(path, "inf or nan")


def test_optimizer_state_must_fit_the_weights(tmp_path):
    path = tmp_path / "c.npz"
    _, optimizer = save(path)
    state = optimizer.state_dict()
    for arrays, drop in [({"optim.m.0": state["m.0"][:1]}, ()), ({}, ("optim.v.2",)),
                         ({"optim.t": np.array([1, 2])}, ()), ({"optim.t": np.array(-1)}, ()),
                         ({"optim.lr": np.array(np.nan)}, ()),
                         ({"optim.v.1": -np.ones_like(state["v.1"])}, ())]:
        save(path)
        tamper(path, arrays=arrays, drop=drop)
        refused(path, "optimizer")


@pytest.mark.parametrize("meta", [
    {"step": -1}, {"step": 2.5}, {"tokens": "many"}, {"best_val": None},
    {"train_config": {"batch_size": "12"}}, {"train_config": {"batch_size": 0}},
    {"train_config": {"no_such_knob": 1}}, {"batch_rng": {"bit_generator": "PCG64"}},
    {"model_rng": [1, 2]}, {"format_version": 99}, {"tokenizer_type": "Pickle"}])
def test_training_state_of_the_wrong_type_is_refused(tmp_path, meta):
    path = tmp_path / "c.npz"
    save(path)
    tamper(path, meta=meta)
    refused(path)


def test_valid_training_state_loads(tmp_path):
    rng = np.random.default_rng(5)
    meta = {"train_config": dataclasses.asdict(TrainConfig()), "best_val": float("inf"),
            "batch_rng": rng.bit_generator.state, "tokens": 10, "elapsed_s": 1}
    save(tmp_path / "c.npz", meta=meta)
    loaded = load_checkpoint(tmp_path / "c.npz")[2]
    assert TrainConfig(**loaded["train_config"]) == TrainConfig()
    assert loaded["batch_rng"] == rng.bit_generator.state and loaded["best_val"] == np.inf


def test_a_corrupt_or_too_small_tokenizer_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    tamper(path, arrays={"tokenizer": np.frombuffer(b'{"format": "tinyllm-char"', np.uint8)})
    message = refused(path, "its tokenizer is corrupt")
    assert "/tmp" not in message.replace(str(path), "")  # not the temporary file's name
    save(path)
    big = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz")
    data = checkpoint_module.tokenizer_bytes(big)
    tamper(path, arrays={"tokenizer": np.frombuffer(data, np.uint8)})
    refused(path, "26 ids, more than the model's vocab_size 12")


def _npy(shape, descr="<f4", data=b""):
    """The bytes of a .npy member whose header claims `shape`, followed by `data`."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return out.getvalue() + data


def _add_member(path, name, content, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "a", compression=compression) as archive:
        archive.writestr(name, content)


@pytest.mark.parametrize("shape", [(10**12,), (10**9,), (2**62,), (-4, -4)])
def test_a_header_claiming_a_huge_shape_allocates_nothing(tmp_path, shape):
    # np.load trusts the header: (10**12,) raised MemoryError (a 3.6 TiB allocation attempt),
    # (10**9,) allocated 4 GB of address space before noticing the data was missing.
    path = tmp_path / "c.npz"
    save(path)
    _add_member(path, "model.huge.npy", _npy(shape, data=bytes(64)))
    tracemalloc.start()
    refused(path, "does not match its size|not a numeric array")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 2**20


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, for the 'meta' written twice
def test_object_compressed_and_mislabelled_members_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    cases = [("model.o.npy", _npy((2,), "|O", bytes(16)), zipfile.ZIP_STORED, "numeric"),
             ("model.s.npy", _npy((2,), "<U3", bytes(24)), zipfile.ZIP_STORED, "numeric"),
             ("model.z.npy", _npy((10**6,), "|u1", bytes(10**6)), zipfile.ZIP_DEFLATED,
              "compressed"),  # a zip bomb in miniature: 1 MB from about 1 kB
             ("notes.txt", b"hello", zipfile.ZIP_STORED, "not a .npy")]
    for name, content, compression, match in cases:
        save(path)
        _add_member(path, name, content, compression)
        refused(path, match)
    save(path)
    _add_member(path, "meta.npy", _npy((3,), "|u1", b"{}\n"))  # a second 'meta'
    refused(path, "appears twice")


def test_members_that_overlap_are_refused_before_any_is_read(tmp_path):
    # Fifield's overlapping zip bomb: members that share bytes, so reading each of them takes
    # many times the file's size without any compression. Here member a's span covers b.
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.a.npy", _npy((1000,), "|u1", bytes(1000)))
        archive.writestr("model.b.npy", _npy((1000,), "|u1", bytes(1000)))
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # a's central directory record
    for field in (20, 24):  # its compressed and uncompressed sizes
        struct.pack_into("<I", data, entry + field, 1900)
    path.write_bytes(bytes(data))
    assert len(data) > 1900  # a alone fits in the file; a and b together do not
    refused(path, "members claim more bytes than the file has")


def test_truncated_flipped_missing_and_foreign_files_are_rejected_clearly(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    refused(path, "not a readable checkpoint")
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0x40  # inside some weight's data: the zip's CRC catches it
    path.write_bytes(bytes(flipped))
    refused(path, "CRC|not a readable")
    refused(tmp_path / "absent.npz", "not a readable checkpoint")
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    refused(tmp_path / "other.npz", "not a tinyllm checkpoint")


def test_failed_save_leaves_the_old_checkpoint_and_no_temp_files(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save(path, meta={"not json": object()})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_save_refuses_weights_it_could_not_load(tmp_path):
    model, _ = _run_state()
    state = model.state_dict()
    state["transformer.wte.weight"][0, 0] = np.nan
    with pytest.raises(CheckpointError, match="inf or nan"):
        save_checkpoint(tmp_path / "c.npz", state, {},
                        {"model_config": dataclasses.asdict(model.config)}, TOKENIZER)
    assert not (tmp_path / "c.npz").exists()


def test_save_flushes_the_file_and_its_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    synced, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: synced.append("rename") or real_replace(a, b))
    save(tmp_path / "c.npz")
    assert len(synced) == 3 and synced[1] == "rename"
    assert synced[0].endswith(".tmp") and synced[2] == str(tmp_path)


def test_remove_orphaned_temps_removes_only_temporary_files(tmp_path):
    save(tmp_path / "ckpt.npz")
    for name in ("tmpab12cd34.tmp", "tmp_x.tmp"):
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp.txt").write_text("keep")
    assert remove_orphaned_temps(tmp_path) == ["tmp_x.tmp", "tmpab12cd34.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz", "notes.tmp.txt"]


CONFIGS = [dict(TINY, pos=pos, norm=norm, mlp=mlp, bias=bias, tie_weights=tie)
           for pos, norm, mlp, bias, tie in itertools.product(
               ("learned", "rope", "sinusoidal"), ("layernorm", "rmsnorm"), ("gelu", "swiglu"),
               (True, False), (True, False))]


@pytest.mark.parametrize("fields", CONFIGS[::3] + [dict(TINY, n_layer=3, n_embd=24, n_head=4)])
def test_expected_shapes_are_the_models_own(fields):
    config = GPTConfig(**fields)
    state = GPT(config).state_dict()
    assert expected_shapes(config) == {name: v.shape for name, v in state.items()}
    assert validate_model_state(fields, state) == config
