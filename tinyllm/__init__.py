"""tinyllm: a GPT, its tokenizers, data pipeline, training loop and sampler, built on `autograd`."""
