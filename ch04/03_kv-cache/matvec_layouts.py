"""Why Hugging Face's GPT-2 generates a little faster than ours on some CPUs.

    python matvec_layouts.py

Generating one token at a time, every weight matrix is used once per step in
a matrix-vector product, and the time goes into streaming the weights from
memory, not into arithmetic. Our model and Hugging Face's read the same
weights, but store some of them differently:

* `nn.Linear` (ours, and Hugging Face's output head) keeps the weight as
  (out_features, in_features) and computes `x @ W.T`;
* Hugging Face's `Conv1D` (attention and feed-forward layers of GPT-2) keeps it
  as (in_features, out_features) and computes `x @ W`.

This script times both layouts for the matrix shapes of GPT-2 124M, with
enough copies of each matrix that they cannot stay in the CPU cache (as in a
real model, where every matrix is read once per token).
"""

import argparse
import time

import torch
import torch.nn.functional as F

# (in_features, out_features) of the matrices one GPT-2 124M token passes through.
GPT2_124M_SHAPES = {
    "query, key or value (768 -> 768)": (768, 768),
    "query, key and value together (768 -> 2304)": (768, 2304),
    "feed-forward in (768 -> 3072)": (768, 3072),
    "feed-forward out (3072 -> 768)": (3072, 768),
    "output head (768 -> 50257)": (768, 50257),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50,
                        help="matrix-vector products timed per layout and shape")
    parser.add_argument("--memory-mb", type=int, default=400,
                        help="total size of the copies of each matrix (larger than the cache)")
    return parser.parse_args()


def milliseconds_per_product(multiply, matrices, x, repeats):
    """Average time of `multiply(x, matrix)`, cycling through the copies."""
    for matrix in matrices[:2]:
        multiply(x, matrix)  # warm-up
    start = time.perf_counter()
    for i in range(repeats):
        multiply(x, matrices[i % len(matrices)])
    return (time.perf_counter() - start) / repeats * 1e3


def layout_products(bias):
    """x @ W.T + bias for a weight stored (out, in), and x @ W + bias for one stored (in, out)."""
    return (lambda x, w: F.linear(x, w, bias)), (lambda x, w: torch.addmm(bias, x, w))


def compare_layouts(in_features, out_features, repeats, memory_mb):
    """(ms for out x in with x @ W.T, ms for in x out with x @ W)."""
    bytes_per_matrix = in_features * out_features * 4
    copies = max(2, memory_mb * 2**20 // bytes_per_matrix)
    out_by_in = [torch.randn(out_features, in_features) for _ in range(copies)]
    in_by_out = [w.t().contiguous() for w in out_by_in]
    bias, x = torch.randn(out_features), torch.randn(1, in_features)
    linear, conv1d = layout_products(bias)
    linear_ms = milliseconds_per_product(linear, out_by_in, x, repeats)
    conv1d_ms = milliseconds_per_product(conv1d, in_by_out, x, repeats)
    return linear_ms, conv1d_ms


def main():
    args = parse_args()
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}, float32, "
          f"one token (batch 1)\n")
    print("| matrix | nn.Linear layout (out, in), ms | Conv1D layout (in, out), ms |")
    print("|---|---:|---:|")
    for name, (in_features, out_features) in GPT2_124M_SHAPES.items():
        linear_ms, conv1d_ms = compare_layouts(in_features, out_features,
                                               args.repeats, args.memory_mb)
        print(f"| {name} | {linear_ms:.3f} | {conv1d_ms:.3f} |")


if __name__ == "__main__":
    main()
