"""tinyllm/cli/sample.py: the decoding flags agree with each other, and bad input is one line."""
import pytest

from tinyllm.cli import main


def test_sample_with_top_p_no_cache_a_draft_and_several_samples(tiny_checkpoint, capsys):
    target, draft = tiny_checkpoint("target", 0, 2), tiny_checkpoint("draft", 1, 1)
    greedy = ["sample", "--checkpoint", str(target), "--prompt", "ab",
              "--max-new-tokens", "14", "--temperature", "0"]  # 2 + 14 tokens fit block 16
    outputs = []
    for extra in ([], ["--no-cache"], ["--draft", str(draft)]):
        main(greedy + extra)
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]) == 2 + 14 + 1
    main(greedy[:-2] + ["--top-p", "0.9", "--num-samples", "2"])
    samples = capsys.readouterr().out.split("---------------\n")
    assert len(samples) == 2 and all(s.startswith("ab") and len(s) == 17 for s in samples)


def test_the_graph_path_and_int8_weights_on_request(tiny_checkpoint, capsys):
    target, draft = tiny_checkpoint("target", 0, 2), tiny_checkpoint("draft", 1, 1)
    greedy = ["sample", "--checkpoint", str(target), "--prompt", "ab", "--max-new-tokens", "30",
              "--temperature", "0"]  # 32 tokens: the window of 16 slides
    outputs = []
    for extra in ([], ["--no-fast-decode"], ["--draft", str(draft), "--no_fast_decode"],
                  ["--quantize", "int8"], ["--quantize", "int8", "--draft", str(draft)]):
        main(greedy + extra)
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]  # the compiled step changes no token
    assert outputs[3] == outputs[4] and outputs[3].startswith("ab") and len(outputs[3]) == 33
    with pytest.raises(SystemExit, match="--quantize"):
        main(greedy + ["--quantize", "int4"])


@pytest.mark.parametrize("flags, message", [
    (["--prompt", "xyz"], "'x'"),  # characters outside the vocabulary
    (["--temperature", "nan"], "temperature"),
    (["--max-new-tokens", "-1"], "--max-new-tokens"),
])
def test_bad_sampling_input_is_one_clear_line(tiny_checkpoint, flags, message):
    with pytest.raises(SystemExit, match=message):
        main(["sample", "--checkpoint", str(tiny_checkpoint()), *flags])


def test_a_corrupt_checkpoint_is_one_clear_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SystemExit, match="error: .*bad.npz"):
        main(["sample", "--checkpoint", str(tmp_path / "bad.npz")])
