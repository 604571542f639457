"""Fuzzing the file loaders: every file tinyllm reads from elsewhere, mutated, either loads into
something that works or is refused with the loader's documented error; nothing else.

Kinds: checkpoints (.npz) of a plain and of a LoRA run, CharTokenizer and BPETokenizer files,
tiktoken rank files, GPT-2's encoder.json + vocab.bpe, prepared dataset folders (meta.json,
tokenizer.json, *.bin), and the JSON Lines that `prepare` reads. Each starts from a valid file,
which must load, then takes CASES mutations drawn from a seeded generator: truncation,
flipped, inserted, deleted or repeated bytes, deep "[[[[" nesting, and, in JSON, one field set
to a wrong type, a huge or negative number, nan, a lone surrogate, or a path out of the
folder, or removed. "Works" is checked by using what loaded the way tinyllm does: a
checkpoint's model is built, its weights and optimizer state loaded and run one step forward;
a tokenizer encodes and decodes.

Budgets: the cases run in a child process (this file run as a script) whose address space is
capped (RLIMIT_AS) at what it uses after loading the valid files plus MEMORY_BUDGET, so an
allocation that a file's size does not warrant fails as a MemoryError, a failure here, instead
of taking the machine's memory. Each case must finish within CASE_SECONDS. A failure names the
kind, the case and the mutation, and reproduces: the seed is fixed.
"""
import copy
import dataclasses
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.pipeline import PrepareOptions, prepare
from tinyllm.data.token_files import TokenFileError, load_tokenizer, open_tokens, read_meta
from tinyllm.finetune.lora import LoRASpec
from tinyllm.model import GPT
from tinyllm.optim import AdamW, param_groups
from tinyllm.tokenizer import BPETokenizer, CharTokenizer, TokenizerError, load_any
from tinyllm.tokenizer.tiktoken_files import write_gpt2_files

SEED = 15
CASES = 400  # mutations per kind (about 10 s in all on one core)
MEMORY_BUDGET = 1 << 30  # bytes of address space beyond what loading the valid files took
CASE_SECONDS = 3.0
ODD_VALUES = ["x", "", 1.5, 0, -1, -(10**12), 10**12, 10**40, 1e308, float("nan"), None, True,
              [], {}, [[[]]], [1, 2, 3], {"a": 1}, "../outside.json", "/etc/passwd", "O",
              "\ud800", "(", "<|endoftext|>", "uint8", "BPETokenizer", 2**63, "__deep__"]
DEEP = b"[" * 20_000 + b"]" * 20_000  # what "__deep__" becomes: too deep for Python's parser
LINE_FIELDS = ["-1", "99999999999", "1_0", "x", "", "1e3", "0", "+7", "Ġ", "<|endoftext|>"]


# --- mutations: each takes (data, rng) and returns (description, mutated data) -------------


def mutate_bytes(data, rng):
    """One random damage to a file's bytes."""
    n = len(data)
    i, j = sorted(rng.randrange(n + 1) for _ in range(2))
    how = rng.randrange(6)
    if how == 0:
        return f"truncated at {i} of {n}", data[:i]
    if how == 1:
        out = bytearray(data)
        for k in rng.sample(range(n), min(n, rng.randint(1, 3))):
            out[k] ^= rng.randint(1, 255)
        return "bytes flipped", bytes(out)
    if how == 2:
        return f"bytes {i}:{j} deleted", data[:i] + data[j:]
    if how == 3:
        noise = rng.randbytes(rng.randint(1, 16))
        return f"random bytes inserted at {i}", data[:i] + noise + data[i:]
    if how == 4:
        return f"bytes {i}:{j} repeated", data[:j] + data[i:j] + data[j:]
    return f"deep nesting inserted at {i}", data[:i] + b"[" * 20_000 + data[i:]


def mutate_json(data, rng):
    """One field of a JSON document set to an odd value, or removed."""
    doc = json.loads(data)
    paths = list(_json_paths(doc))
    path = paths[rng.randrange(len(paths))]
    if path and rng.random() < 0.2:
        parent = _at(doc, path[:-1])
        del parent[path[-1]]
        return f"{_name(path)} removed", json.dumps(doc).encode()
    value = rng.choice(ODD_VALUES)
    if path:
        _at(doc, path[:-1])[path[-1]] = copy.deepcopy(value)
    else:
        doc = value
    return f"{_name(path) or 'document'} = {value!r}", json.dumps(doc).encode().replace(
        b'"__deep__"', DEEP)


def _json_paths(doc, prefix=()):
    yield prefix
    items = doc.items() if isinstance(doc, dict) else ()
    if isinstance(doc, list):
        items = enumerate(doc)
    for key, value in items:
        yield from _json_paths(value, prefix + (key,))


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _name(path):
    return "/".join(map(str, path))


def mutate_lines(data, rng):
    """One line of a text file deleted, repeated, or one of its fields replaced."""
    lines = data.split(b"\n")
    k = rng.randrange(len(lines))
    how = rng.randrange(3)
    if how == 0:
        return f"line {k + 1} deleted", b"\n".join(lines[:k] + lines[k + 1:])
    if how == 1:
        return f"line {k + 1} repeated", b"\n".join(lines[:k + 1] + lines[k:])
    fields = lines[k].split(b" ")
    f = rng.randrange(len(fields))
    fields[f] = rng.choice(LINE_FIELDS).encode()
    lines[k] = b" ".join(fields)
    return f"line {k + 1} field {f} = {fields[f]!r}", b"\n".join(lines)


def mutate_jsonl(data, rng):
    """One record of a JSON Lines file mutated as JSON."""
    lines = data.split(b"\n")
    k = rng.randrange(len(lines) - 1)  # the last "line" is the empty one after the final \n
    what, lines[k] = mutate_json(lines[k], rng)
    return f"line {k + 1}: {what}", b"\n".join(lines)


# --- the kinds: valid files, how tinyllm uses them, what may be raised ---------------------


class Kind:
    """A kind of file: `make(folder)` writes the valid files and returns {name: mutators},
    `use(folder)` loads and exercises them, `errors` are the documented exceptions."""
    def __init__(self, make, use, errors):
        self.make, self.use, self.errors = make, use, errors


def _sample_text():
    return ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
            "speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
            "É très bien — 中文 🙂 1234567 'll\n\n") * 3


def _bpe():
    return BPETokenizer.train(_sample_text(), 320, special_tokens=["<|endoftext|>"])


def _exercise(tok):
    if isinstance(tok, CharTokenizer):
        text = tok.decode(range(tok.vocab_size))
        assert tok.decode(tok.encode(text)) == text
    else:
        tok.decode(sorted(tok.vocab))
        text = "Speak, speak. 中文 <|endoftext|>"
        assert tok.decode(tok.encode_ordinary(text)) == text


def make_checkpoint(folder, lora=None):
    tok = CharTokenizer.from_text(_sample_text())
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = GPT(config, np.random.default_rng(0))
    if lora is not None:  # a fine-tuning run: adapters on the frozen model, trained alone
        lora.adapt(model, np.random.default_rng(1))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3)
    meta = {"lora": lora.to_dict()} if lora is not None else {}
    meta |= {"model_config": dataclasses.asdict(config), "step": 4, "best_val": 2.5,
            "train_config": dataclasses.asdict(TrainConfig()), "tokens": 64, "elapsed_s": 1.0,
            "batch_rng": np.random.default_rng(1).bit_generator.state,
            "notes": {"data": "shakespeare", "seeds": [1, 2]}}  # free-form: any value loads
    save_checkpoint(folder / "c.npz", model.state_dict(), optimizer.state_dict(), meta, tok)
    return {"c.npz": [mutate_bytes, _mutate_members]}


def make_lora_checkpoint(folder):
    return make_checkpoint(folder, LoRASpec(rank=2, targets=("c_attn", "mlp.c_proj")))


def _mutate_members(data, rng):
    """A checkpoint rewritten with one member changed: its JSON, its tokenizer's bytes, or an
    array given another shape, dtype, values or a header that lies about its shape."""
    with np.load(io.BytesIO(data)) as archive:
        members = {k: archive[k] for k in archive.files}
    name = rng.choice(sorted(members))
    if name in ("meta", "tokenizer"):
        mutate = rng.choice([mutate_json, mutate_bytes])
        what, new = mutate(members[name].tobytes(), rng)
        members[name] = np.frombuffer(new, dtype=np.uint8)
        return f"{name}: {what}", _savez(members)
    array = members[name]
    changes = {"cut": lambda a: a.reshape(-1)[:-1], "int": lambda a: a.astype(np.int32),
               "nan": lambda a: np.full_like(a, np.nan, dtype=np.float32),
               "transposed": lambda a: a.T.copy() if a.ndim == 2 else a[None],
               "scalar": lambda a: np.float32(1.0),
               "bytes": lambda a: np.frombuffer(a.tobytes(), np.uint8),
               "text": lambda a: np.array(["x"] * max(a.size, 1))}
    change = rng.choice(sorted(changes) + ["lying header"])
    if change == "lying header":
        return f"{name}: lying header", _with_lying_header(members, name, rng)
    members[name] = changes[change](array)
    return f"{name}: {change}", _savez(members)


def _savez(members):
    out = io.BytesIO()
    np.savez(out, **members)
    return out.getvalue()


def _with_lying_header(members, name, rng):
    shape = rng.choice([(10**12,), (10**9,), (2**40, 2**40), (3, 10**10)])
    del members[name]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    out = io.BytesIO(_savez(members))
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr(name + ".npy", header.getvalue() + bytes(64))
    return out.getvalue()


def use_checkpoint(folder):
    state, optim, meta, tok = load_checkpoint(folder / "c.npz")
    model = GPT(GPTConfig(**meta["model_config"]))  # as tinyllm.load and train.restore do
    if "lora" in meta:
        LoRASpec.from_dict(meta["lora"]).adapt(model, np.random.default_rng(0))
    model.load_state_dict(state)
    if optim:
        AdamW(param_groups(model, 0.1), lr=1.0).load_state_dict(optim)
    for name in ("batch_rng", "model_rng"):
        if name in meta:
            np.random.default_rng().bit_generator.state = meta[name]
    if "train_config" in meta:
        TrainConfig(**meta["train_config"])
    logits, _ = model(np.zeros((1, 2), dtype=np.int64))
    assert np.isfinite(logits.data).all()
    _exercise(tok)


def make_char(folder):
    CharTokenizer.from_text(_sample_text()).save(folder / "tok.json")
    return {"tok.json": [mutate_bytes, mutate_json]}


def use_saved_tokenizer(folder):
    _exercise(load_any(folder / "tok.json"))


def make_bpe(folder):
    _bpe().save(folder / "tok.json")
    return {"tok.json": [mutate_bytes, mutate_json, mutate_json]}


def make_tiktoken(folder):
    _bpe().save_tiktoken(folder / "ranks.tiktoken")
    return {"ranks.tiktoken": [mutate_bytes, mutate_lines]}


def use_tiktoken(folder):
    _exercise(BPETokenizer.from_tiktoken(folder / "ranks.tiktoken", "gpt2"))


def make_gpt2(folder):
    tok = _bpe()
    ordinary = {i: b for i, b in tok.vocab.items() if i not in tok.special_tokens.values()}
    write_gpt2_files(folder / "encoder.json", folder / "vocab.bpe", ordinary, tok.merges,
                     tok.special_tokens)
    return {"encoder.json": [mutate_bytes, mutate_json], "vocab.bpe": [mutate_bytes,
                                                                       mutate_lines]}


def use_gpt2(folder):
    _exercise(BPETokenizer.from_gpt2(folder / "encoder.json", folder / "vocab.bpe"))


def make_dataset(folder):
    (folder / "outside.json").write_text("{}")
    source = folder / "text.txt"
    source.write_text(_sample_text())
    prepare(source, folder / "data", "bpe:300", progress=False)
    return {"data/meta.json": [mutate_json, mutate_json, mutate_bytes],
            "data/tokenizer.json": [mutate_json, mutate_bytes],
            "data/train.bin": [mutate_bytes]}


def use_dataset(folder):
    read_meta(folder / "data")
    _exercise(load_tokenizer(folder / "data"))
    for split in ("train", "val"):
        open_tokens(folder / "data", split)[:64].tolist()


def make_jsonl(folder):
    records = [{"text": block, "id": k} for k, block in enumerate(_sample_text().split("\n\n"))]
    (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"docs.jsonl": [mutate_jsonl, mutate_jsonl, mutate_bytes]}


def use_jsonl(folder):
    prepare(folder / "docs.jsonl", folder / "out", "char", PrepareOptions(dedup=True),
            progress=False)
    _exercise(load_tokenizer(folder / "out"))


def kinds():
    return {"checkpoint": Kind(make_checkpoint, use_checkpoint, (CheckpointError,)),
            "lora_checkpoint": Kind(make_lora_checkpoint, use_checkpoint, (CheckpointError,)),
            "char": Kind(make_char, use_saved_tokenizer, (TokenizerError,)),
            "bpe": Kind(make_bpe, use_saved_tokenizer, (TokenizerError,)),
            "tiktoken": Kind(make_tiktoken, use_tiktoken, (TokenizerError,)),
            "gpt2": Kind(make_gpt2, use_gpt2, (TokenizerError,)),
            "dataset": Kind(make_dataset, use_dataset, (TokenFileError, TokenizerError)),
            "jsonl": Kind(make_jsonl, use_jsonl, (ValueError,))}  # sources.py: ValueError


# --- the child process: run every case under the memory cap --------------------------------


def run_all():
    """{kind: report} for every kind; runs in the child, after capping the address space."""
    with tempfile.TemporaryDirectory() as tmp:
        valid = {name: _make(Path(tmp) / name, kind) for name, kind in kinds().items()}
        _cap_address_space(MEMORY_BUDGET)
        return {name: _run_kind(Path(tmp) / name, kinds()[name], valid[name])
                for name in valid}


def _make(folder, kind):
    """Write the valid files, check they load, return {file: (bytes, mutators)}."""
    folder.mkdir()
    files = kind.make(folder)
    kind.use(folder)
    return {name: ((folder / name).read_bytes(), mutators) for name, mutators in files.items()}


def _cap_address_space(extra):
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = used + extra if hard == resource.RLIM_INFINITY else min(used + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run_kind(folder, kind, valid):
    rng = random.Random(f"{SEED}-{folder.name}")
    report = {"loaded": 0, "refused": 0, "failures": [], "slowest": 0.0}
    for case in range(CASES):
        name = rng.choice(sorted(valid))
        data, mutators = valid[name]
        what, mutated = rng.choice(mutators)(data, rng)
        for other, (original, _) in valid.items():  # the other files as they were
            (folder / other).write_bytes(mutated if other == name else original)
        _scrub_outputs(folder)
        print(f"{folder.name} case {case}, {name}: {what}", file=sys.stderr, flush=True)
        outcome, seconds = _run_case(kind, folder)  # a crash: stderr's last line names it
        report["slowest"] = max(report["slowest"], seconds)
        if outcome in ("loaded", "refused"):
            report[outcome] += 1
        if outcome not in ("loaded", "refused") or seconds > CASE_SECONDS:
            report["failures"].append(f"case {case}, {name}: {what}: {outcome} "
                                      f"in {seconds:.2f} s")
    return report


def _scrub_outputs(folder):
    shutil.rmtree(folder / "out", ignore_errors=True)  # what use_jsonl's prepare wrote before


def _run_case(kind, folder):
    start = time.perf_counter()
    try:
        kind.use(folder)
        outcome = "loaded"
    except kind.errors as e:
        outcome = "refused" if "\n" not in str(e) else f"refused over lines: {e!r}"[:300]
    except Exception as e:  # anything else is what this test exists to find
        outcome = f"{type(e).__name__}: {e}"[:300]
    return outcome, time.perf_counter() - start


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports():
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]  # e.g. a segmentation fault
    return json.loads(done.stdout.splitlines()[-1])


KINDS = ["checkpoint", "lora_checkpoint", "char", "bpe", "tiktoken", "gpt2", "dataset", "jsonl"]


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_files_load_or_raise_the_documented_error(reports, kind):
    report = reports[kind]
    assert report["failures"] == []
    # the mutations reach both outcomes, so the loaders are exercised, not just refused
    assert report["loaded"] > 0 and report["refused"] > CASES // 4
    assert report["slowest"] < CASE_SECONDS


def test_the_kinds_are_all_fuzzed():
    assert sorted(KINDS) == sorted(kinds())


if __name__ == "__main__":
    print(json.dumps(run_all()))
