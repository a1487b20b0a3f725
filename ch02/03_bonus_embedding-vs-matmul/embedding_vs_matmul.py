"""nn.Embedding versus one-hot vectors times nn.Linear: same values, same gradients.

An embedding layer looks up rows of its weight matrix. Multiplying one-hot
encoded token ids with the same matrix (held by an nn.Linear without bias)
selects the same rows, so both layers give identical outputs and the same
weight gradients (up to rounding where an id occurs many times: the two add up
its gradient contributions in different orders). The lookup only skips the many
multiplications by zero.
This script checks the equality at a chosen size and times both ways:

    python embedding_vs_matmul.py               # GPT-2's sizes: 50,257 x 768
    python embedding_vs_matmul.py --vocab-size 1000 --emb-dim 64 --num-tokens 32

On a CPU that other programs keep busy, try --threads 1: multi-threaded
PyTorch operations then wait for descheduled threads, which can swamp the
time of the operation itself.
"""

import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    positive_int,
    synchronize,
)


def linear_layer_like(embedding):
    """An nn.Linear (no bias) that maps one-hot vectors to `embedding`'s rows.

    nn.Linear keeps its weight as (out_features, in_features) and computes
    x @ weight.T, so it holds the transpose of the embedding matrix.
    """
    vocab_size, emb_dim = embedding.weight.shape
    linear = nn.Linear(vocab_size, emb_dim, bias=False, device=embedding.weight.device)
    with torch.no_grad():
        linear.weight.copy_(embedding.weight.T)
    return linear


def one_hot_times_linear(linear, token_ids):
    """Encode the ids as one-hot rows and multiply them with the linear layer."""
    one_hot = F.one_hot(token_ids, num_classes=linear.in_features)
    return linear(one_hot.to(linear.weight.dtype))


def compare_embedding_and_linear(embedding, linear, token_ids, seed=0):
    """Run both layers forward and backward; return the largest differences.

    Both backward passes get the same random upstream gradient (as if some
    loss followed), so their weight gradients must agree, up to the transpose.
    """
    embedding.zero_grad()
    linear.zero_grad()
    looked_up = embedding(token_ids)
    multiplied = one_hot_times_linear(linear, token_ids)

    generator = torch.Generator().manual_seed(seed)
    upstream = torch.randn(looked_up.shape, generator=generator).to(looked_up.device)
    looked_up.backward(upstream)
    multiplied.backward(upstream)

    return {
        "output": (looked_up - multiplied).abs().max().item(),
        "gradient": (embedding.weight.grad - linear.weight.grad.T).abs().max().item(),
    }


def median_seconds(step, device, repeats):
    """Median wall time of `step()` over `repeats` runs, after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        synchronize(device)  # GPU work is queued: wait before reading the clock
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_forward_backward(embedding, linear, token_ids, repeats=3):
    """Median seconds for one forward and backward pass through each layer."""
    device = embedding.weight.device

    def lookup_step():
        embedding(token_ids).sum().backward()

    def matmul_step():
        one_hot_times_linear(linear, token_ids).sum().backward()

    return {
        "embedding lookup": median_seconds(lookup_step, device, repeats),
        "one-hot @ linear": median_seconds(matmul_step, device, repeats),
    }


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (the device a torch.device)."""
    parser = ScriptArgumentParser(
        description="Check that nn.Embedding equals one-hot x nn.Linear, and time both."
    )
    parser.add_argument("--vocab-size", type=positive_int, default=50257,
                        help="rows of the table")
    parser.add_argument("--emb-dim", type=positive_int, default=768, help="embedding dimension")
    parser.add_argument("--num-tokens", type=positive_int, default=512,
                        help="token ids per forward pass (random, with repeats)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per method")
    parser.add_argument("--seed", type=int, default=123, help="seed for weights and ids")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for PyTorch (default: %(default)s, PyTorch's choice)")
    add_device_argument(parser)
    return vars(parser.parse_args(argv))


def main(settings):
    """Compare and time both methods as `settings` (parse_args's dict) says; print a table."""
    device, repeats = settings["device"], settings["repeats"]
    vocab_size, emb_dim, num_tokens = (settings["vocab_size"], settings["emb_dim"],
                                       settings["num_tokens"])

    if settings["threads"]:
        torch.set_num_threads(settings["threads"])

    torch.manual_seed(settings["seed"])
    embedding = nn.Embedding(vocab_size, emb_dim, device=device)
    linear = linear_layer_like(embedding)
    token_ids = torch.randint(vocab_size, (num_tokens,), device=device)

    differences = compare_embedding_and_linear(embedding, linear, token_ids)
    seconds = time_forward_backward(embedding, linear, token_ids, repeats)
    one_hot_mib = num_tokens * vocab_size * 4 / 2**20

    print(f"torch {torch.__version__}, device: {device}, threads: {torch.get_num_threads()}")
    print(f"vocab_size={vocab_size}, emb_dim={emb_dim}, "
          f"num_tokens={num_tokens}, repeats={repeats}")
    print(f"largest output difference:   {differences['output']:.3g}")
    print(f"largest gradient difference: {differences['gradient']:.3g}")
    print(f"one-hot input: {one_hot_mib:.1f} MiB of float32 (the lookup needs none)")
    print()
    print("| method | forward + backward (ms, median) |")
    print("|---|---:|")
    for method, duration in seconds.items():
        print(f"| {method} | {1000 * duration:.2f} |")
    ratio = seconds["one-hot @ linear"] / seconds["embedding lookup"]
    print(f"\nthe one-hot product took {ratio:.1f}x as long as the lookup")


if __name__ == "__main__":
    main(parse_args())
