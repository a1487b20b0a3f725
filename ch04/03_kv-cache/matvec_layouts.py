"""Does the memory order of a weight matrix change how fast one token goes through it?

    python matvec_layouts.py

Generating one token at a time, every weight matrix is used once per step in
a matrix-vector product, and the time goes into streaming the weights from
memory, not into arithmetic. `nn.Linear` computes `x @ W.T` with an
(out_features, in_features) weight W, which can sit in memory in two orders:

* row by row (row-major), as `nn.Linear` creates it;
* column by column (column-major), as `store_weights_column_major` leaves it.
  This is the memory order of Hugging Face's GPT-2 `Conv1D` layers, which
  keep the transposed (in, out) matrix row by row.

Both give the same product (up to rounding); the matrix-vector kernel that
does the work differs. This script times `F.linear` with both orders for the
matrix shapes of GPT-2 124M, with enough copies of each matrix that they
cannot stay in the CPU cache (as in a real model, where every matrix is read
once per token).
"""

import time

import torch
import torch.nn.functional as F
from gpt_with_kv_cache import column_major
from script_helpers import (ScriptArgumentParser, add_device_argument, positive_int,
                            synchronize)

# (in_features, out_features) of the matrices one GPT-2 124M token passes through.
GPT2_124M_SHAPES = {
    "query, key or value (768 -> 768)": (768, 768),
    "query, key and value together (768 -> 2304)": (768, 2304),
    "feed-forward in (768 -> 3072)": (768, 3072),
    "feed-forward out (3072 -> 768)": (3072, 768),
    "output head (768 -> 50257)": (768, 50257),
}


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (the device a torch.device)."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=50,
                        help="matrix-vector products timed per layout and shape")
    parser.add_argument("--memory-mb", type=positive_int, default=400,
                        help="total size of the copies of each matrix (larger than the cache)")
    add_device_argument(parser)
    return vars(parser.parse_args(argv))


def milliseconds_per_product(multiply, matrices, x, repeats):
    """Average time of `multiply(x, matrix)`, cycling through the copies."""
    for matrix in matrices[:2]:
        multiply(x, matrix)  # warm-up
    synchronize(x.device)
    start = time.perf_counter()
    for i in range(repeats):
        multiply(x, matrices[i % len(matrices)])
    synchronize(x.device)
    return (time.perf_counter() - start) / repeats * 1e3


def compare_layouts(in_features, out_features, repeats, memory_mb, device="cpu"):
    """(ms with the weight stored row-major, ms with it stored column-major)."""
    bytes_per_matrix = in_features * out_features * 4
    copies = max(2, memory_mb * 2**20 // bytes_per_matrix)
    row_major = [torch.randn(out_features, in_features, device=device) for _ in range(copies)]
    col_major = [column_major(w) for w in row_major]
    bias = torch.randn(out_features, device=device)
    x = torch.randn(1, in_features, device=device)

    def linear(x, weight):
        return F.linear(x, weight, bias)

    row_major_ms = milliseconds_per_product(linear, row_major, x, repeats)
    col_major_ms = milliseconds_per_product(linear, col_major, x, repeats)
    return row_major_ms, col_major_ms


def main(settings):
    """Time both layouts for every GPT-2 124M shape as `settings` (parse_args's dict) says."""
    device = settings["device"]
    print(f"torch {torch.__version__}, device: {device}, "
          f"threads: {torch.get_num_threads()}, float32, "
          f"one token (batch 1)\n")
    print("| matrix | row-major weight (nn.Linear's), ms | column-major weight, ms |")
    print("|---|---:|---:|")
    for name, (in_features, out_features) in GPT2_124M_SHAPES.items():
        row_major_ms, col_major_ms = compare_layouts(in_features, out_features,
                                                     settings["repeats"], settings["memory_mb"],
                                                     device)
        print(f"| {name} | {row_major_ms:.3f} | {col_major_ms:.3f} |")


if __name__ == "__main__":
    main(parse_args())
