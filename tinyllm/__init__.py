"""tinyllm: a GPT, its tokenizers, data pipeline, training loop and sampler, built on `autograd`."""

import autograd  # noqa: F401  first: its OpenBLAS setting must precede NumPy (see there)
