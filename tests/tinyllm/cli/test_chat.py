"""tinyllm/cli/chat.py: one answer with --prompt, a conversation from piped stdin (with its
history), and a bad message reported on one line without ending the conversation."""
import dataclasses
import io
import subprocess
import sys

import pytest

from tests.tinyllm.finetune.helpers import char_tokenizer
from tests.tinyllm.tiny_models import tiny_gpt
from tinyllm.checkpoint import save_checkpoint
from tinyllm.cli import chat as chat_command
from tinyllm.cli import main
from tinyllm.finetune.chat import respond
from tinyllm.load import load_model

GREEDY = ["--temperature", "0", "--max-new-tokens", "12"]


@pytest.fixture
def checkpoint(tmp_path):
    """A random tiny char model whose vocabulary covers the prompt template (its weights
    scaled up, so greedy answers are not all one character)."""
    tokenizer = char_tokenizer()
    model = tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=192)
    path = tmp_path / "chat.npz"
    save_checkpoint(path, model.state_dict(), {},
                    {"model_config": dataclasses.asdict(model.config)}, tokenizer)
    return path


def answers(path, messages):
    """What the library answers to each message in turn, greedily, with the history."""
    model, tokenizer, _ = load_model(path)
    history = []
    for message in messages:
        history.append((message, "".join(respond(model, tokenizer, history, message, 12, 0))))
    return [answer for _, answer in history]


def test_one_shot_prompt_prints_the_answer(checkpoint, capsys):
    main(["chat", "--checkpoint", str(checkpoint), "--prompt", "Say hi.", *GREEDY])
    assert capsys.readouterr().out == answers(checkpoint, ["Say hi."])[0] + "\n"


def test_a_piped_conversation_keeps_its_history(checkpoint):
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm.cli", "chat", "--checkpoint", str(checkpoint), *GREEDY],
        input="Say hi.\n\n  \nSpell it.\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    first, second = answers(checkpoint, ["Say hi.", "Spell it."])
    assert first and done.stdout == first + "\n" + second + "\n"


def test_each_answer_joins_the_history(checkpoint, capsys, monkeypatch):
    seen = []

    def spy(model, tokenizer, history, message, *sampling):
        seen.append(list(history))
        return respond(model, tokenizer, history, message, *sampling)

    monkeypatch.setattr(chat_command, "respond", spy)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Say hi.\nSpell it.\nAdd 2 and 3.\n"))
    main(["chat", "--checkpoint", str(checkpoint), *GREEDY])
    first, second, _ = capsys.readouterr().out.splitlines()
    assert seen == [[], [("Say hi.", first)], [("Say hi.", first), ("Spell it.", second)]]


def test_a_bad_message_is_one_line_and_the_conversation_goes_on(checkpoint, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ça va?\nSay hi.\n"))
    main(["chat", "--checkpoint", str(checkpoint), *GREEDY])
    out, err = capsys.readouterr()
    assert err.startswith("error: the message cannot be encoded: character 'Ç' (U+00C7)")
    assert err.count("\n") == 1
    assert out == answers(checkpoint, ["Say hi."])[0] + "\n"
    with pytest.raises(SystemExit, match="error: the message cannot be encoded"):
        main(["chat", "--checkpoint", str(checkpoint), "--prompt", "Ça va?"])
