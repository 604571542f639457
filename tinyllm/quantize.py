"""Weight-only int8 quantization: a quarter of the bytes to read per decoded token.

A cached decoding step streams every weight matrix from memory once and does little arithmetic
with it (decode.py), so its time is roughly the model's size in bytes over the memory
bandwidth. Storing the matrices as int8 instead of float32 reads 1 byte per weight, not 4.

The scheme: symmetric ("absmax"), one scale per output channel. For a Linear weight w (in, out)
and each output j,
    scale[j] = max_k |w[k, j]| / 127,      q[k, j] = round(w[k, j] / scale[j])  in [-127, 127]
so w[k, j] is stored as q[k, j] scale[j], off by at most scale[j] / 2. One scale per output
channel rather than per matrix because channels differ in size: a single scale would be set by
the largest weight of the whole matrix and round the small channels coarsely. The scale of an
output factors out of its sum, so the matrix-vector product accumulates x[k] q[k, j] in float
and multiplies by scale[j] once (autograd/kernels/gemv.py). Only weights are quantized;
activations stay float ("W8A16"; LLM.int8(), Dettmers et al. 2022, also quantizes activations
and must then treat their outlier features separately).

`quantize_model` quantizes every block's four Linear weights and the output head (with it the
tied token embedding) in place: each float parameter is overwritten with its dequantized value
q * scale, and the int8 copies are kept in `model.quantized`. So every path computes the same
function: the graph forward (prefill, `tinyllm eval`) with the float copies, decode.py's
compiled step by streaming the int8 ones. A checkpoint saved afterwards holds the rounded
floats, and quantizing them again gives the same int8 copies. Whether the rounding costs
quality is measured, not assumed: benchmarks/quantize.py compares validation loss and greedy
outputs.

Shapes: K inputs, N outputs of a weight matrix.
Left out: int8 checkpoints (quantizing at load takes about a second for GPT-2 124M, so they
would save only disk; a GPT-2 folder cannot hold int8), biases, norms and the position table
(small, read once per token), int4 and group-wise scales, error-compensating rounding (GPTQ).
"""
import numpy as np

# Linear weights of every block, stored (in, out): quantized per column (the input axis is 0).
BLOCK_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                 "mlp.c_proj.weight")
# The head's weight (V, C) holds one output per row; its int8 copy is stored transposed, (C, V)
# as a Linear's, because decode.py streams that layout faster (see there).
HEAD = "lm_head.weight"


def quantize_int8(w, axis=0):
    """(q, scale): w as int8 q (same shape) with one scale per slice along `axis` (the inputs).

    w (K, N), axis 0 -> q (K, N) int8, scale (N,) in w's dtype, and q * scale approximates w.
    >>> q, scale = quantize_int8(np.array([[1.0, -0.5], [-2.54, 0.25]], np.float32))
    >>> q, scale.round(4)   # column 0 scaled by 2.54 / 127, column 1 by 0.5 / 127
    (array([[  50, -127],
           [-127,   64]], dtype=int8), array([0.02  , 0.0039], dtype=float32))
    """
    w = np.asarray(w)
    scale = np.abs(w).max(axis=axis) / 127  # (N,): the largest weight maps to +-127
    # a channel of zeros: any scale rounds it to 0; divide by 1 rather than 0
    divisor = np.expand_dims(np.where(scale > 0, scale, 1), axis)  # (1, N)
    q = np.clip(np.rint(w / divisor), -127, 127).astype(np.int8)  # (K, N)
    return q, scale.astype(w.dtype)


def dequantize_int8(q, scale, axis=0):
    """The float weights q (K, N) int8 stand for: q * scale, scale (N,) per slice along axis.

    >>> dequantize_int8(np.array([[50, -127]], np.int8), np.array([0.02, 0.5]))
    array([[  1. , -63.5]])
    """
    return q * np.expand_dims(scale, axis)  # (K, N)


def quantize_model(model):
    """Quantize the model's weight matrices to int8 in place (module docstring); returns it.

    Quantizing again changes nothing: dequantized weights round to themselves.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> model = quantize_model(GPT(GPTConfig(n_layer=1), np.random.default_rng(0)))
    >>> sorted(model.quantized)[:2], model.quantized["lm_head.weight"][0].dtype
    (['lm_head.weight', 'transformer.h.0.attn.c_attn.weight'], dtype('int8'))
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    names = [f"transformer.h.{i}.{name}" for i in range(model.config.n_layer)
             for name in BLOCK_WEIGHTS]
    quantized = {}
    for name in names + [HEAD]:
        w = params[name].data.T if name == HEAD else params[name].data  # (in, out), a view
        q, scale = quantize_int8(w)  # one scale per output column
        w[...] = dequantize_int8(q, scale)  # in place, through the view: tied weights too
        quantized[name] = (np.ascontiguousarray(q), scale)
    model.quantized = quantized
    return model


def int8_weights(model):
    """{parameter name: (q, scale)} kept by quantize_model; {} for a model never quantized.

    The copies are of the weights at quantization time: load new weights, quantize again."""
    return getattr(model, "quantized", {})
