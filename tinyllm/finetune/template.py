"""The prompt template: how an instruction becomes the text a fine-tuned model continues.

A pretrained model only continues documents, so instruction tuning teaches it one document
shape, and every later use must show it exactly that shape again. This module is the one place
the shape is written down; SFT (sft.py), preference tuning (dpo.py) and chatting (chat.py) all
call it, so the three cannot drift apart. The layout is Alpaca's (Taori et al., 2023), as
Raschka's "Build a Large Language Model (From Scratch)", chapter 7, uses it:

    Below is an instruction that describes a task. Write a response that appropriately
    completes the request.

    ### Instruction:
    {instruction}

    ### Input:                     <- only when the example has an input
    {input}

    ### Response:
    {response}<end>

The prompt is everything up to and including "### Response:\\n"; the model learns to write the
response and then the end marker, which is how it learns to stop. The end marker is the one
that separated documents in pretraining (token_files.separator_ids): the tokenizer's
"<|endoftext|>" token, or, for a character tokenizer that has none, the two ids of "\\n\\n" (a
blank line). So a character model stops at its first blank line, and a response that contains
one is, to it, two documents; BPE models have no such ambiguity.

Prompt and response are encoded separately, as they will be at inference, where the prompt is
encoded alone and the response comes from the model; text in the data is always ordinary text
("<|endoftext|>" written in a response cannot forge an end).

Left out: chat templates with roles (system/user/assistant) and their special tokens.
"""
from tinyllm.data.token_files import encoder, separator_ids

PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")


def format_prompt(instruction, input=""):
    """The prompt text for one example, ending where the response begins.

    >>> format_prompt("Add 2 and 3.").split("\\n")[1:]  # [0] is PREAMBLE
    ['', '### Instruction:', 'Add 2 and 3.', '', '### Response:', '']
    >>> format_prompt("Translate.", "chat")[-43:]
    'Translate.\\n\\n### Input:\\nchat\\n\\n### Response:\\n'
    """
    text = f"{PREAMBLE}\n\n### Instruction:\n{instruction}"
    if input:
        text += f"\n\n### Input:\n{input}"
    return text + "\n\n### Response:\n"


def end_ids(tokenizer):
    """The ids that end every response: <|endoftext|>, else the encoding of a blank line.

    >>> from tinyllm.tokenizer import CharTokenizer
    >>> end_ids(CharTokenizer.from_text("ab\\n"))
    [0, 0]
    """
    return separator_ids(tokenizer)


def encode_prompt(tokenizer, instruction, input=""):
    """The prompt's token ids (a list).

    >>> from tinyllm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.from_text(format_prompt("hi"))
    >>> tok.decode(encode_prompt(tok, "hi")[-15:])
    '\\n### Response:\\n'
    """
    return list(encoder(tokenizer)(format_prompt(instruction, input)))


def encode_response(tokenizer, response):
    """The response's token ids followed by the end marker (a list).

    >>> from tinyllm.tokenizer import CharTokenizer
    >>> encode_response(CharTokenizer.from_text("ab\\n"), "ba")
    [2, 1, 0, 0]
    """
    return list(encoder(tokenizer)(response)) + end_ids(tokenizer)
