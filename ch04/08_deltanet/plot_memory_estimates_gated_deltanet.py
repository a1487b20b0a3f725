"""Plot cache memory against the context length: MHA, Gated DeltaNet, and a 3:1 hybrid.

    python plot_memory_estimates_gated_deltanet.py --emb_dim 2048 --n_heads 16 \
        --n_layers 48 --dtype bf16          # writes deltanet_memory_plot.pdf

MHA caches a key and a value per head, layer and token, so its cache grows
with the context. A Gated DeltaNet layer keeps one head_dim x head_dim state
per head (its short convolution's few cached tokens are left out, as in the
book), whatever the context. The hybrid uses attention in every 4th layer
(Qwen3-Next's 3:1) and Gated DeltaNet in the others.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from downloads import atomic_write  # noqa: E402
import numpy as np  # noqa: E402
from script_helpers import ScriptArgumentParser, positive_int, writable_file  # noqa: E402

# Copied from ch04/04_gqa/memory_estimator_gqa.py::DTYPE_BYTES
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
FULL_ATTENTION_INTERVAL = 4  # 3 Gated DeltaNet layers, then 1 attention layer


def calc_kv_bytes_total_mha(batch, context_length, emb_dim, n_layers, bytes_per_elem, n_heads):
    """KV cache of n_layers MHA layers: a key and a value per head and token."""
    head_dim = emb_dim // n_heads
    return batch * context_length * n_heads * head_dim * 2 * bytes_per_elem * n_layers


def calc_kv_bytes_total_deltanet_no_conv(batch, emb_dim, n_layers, bytes_per_elem, n_heads):
    """State of n_layers Gated DeltaNet layers: head_dim x head_dim per head."""
    head_dim = emb_dim // n_heads
    return batch * n_heads * head_dim * head_dim * bytes_per_elem * n_layers


def calc_hybrid_bytes_total(batch, context_length, emb_dim, n_layers, bytes_per_elem, n_heads,
                            full_attention_interval=FULL_ATTENTION_INTERVAL):
    """Cache of the hybrid: every `full_attention_interval`-th layer MHA, the rest DeltaNet."""
    n_attention = n_layers // full_attention_interval
    return (calc_kv_bytes_total_mha(batch, context_length, emb_dim, n_attention,
                                    bytes_per_elem, n_heads)
            + calc_kv_bytes_total_deltanet_no_conv(batch, emb_dim, n_layers - n_attention,
                                                   bytes_per_elem, n_heads))


def convert_to_gb(x):
    """Bytes to decimal gigabytes."""
    return x / 1e9


def memory_curves(batch, emb_dim, n_heads, n_layers, dtype, min_ctx, max_ctx):
    """(context lengths, {label: GB per context length})."""
    nbytes = DTYPE_BYTES[dtype]
    contexts = np.arange(min_ctx, max_ctx + 1, 100)
    deltanet = calc_kv_bytes_total_deltanet_no_conv(batch, emb_dim, n_layers, nbytes, n_heads)
    return contexts, {
        "MHA (all layers)": convert_to_gb(
            calc_kv_bytes_total_mha(batch, contexts, emb_dim, n_layers, nbytes, n_heads)),
        "Gated DeltaNet (all layers)": convert_to_gb(np.full(len(contexts), deltanet)),
        "3:1 Gated DeltaNet : MHA": convert_to_gb(
            calc_hybrid_bytes_total(batch, contexts, emb_dim, n_layers, nbytes, n_heads)),
    }


# Copied from ch04/04_gqa/plot_memory_estimates_gqa.py::plot_lines
def plot_lines(x_values, curves, xlabel, ylabel, title, output, log_x=True, log_y=False):
    """One line per curve ({label: y values}) over x_values, saved to `output`."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        ax.plot(x_values, values, marker="o" if len(x_values) <= 20 else None, label=label)
    if log_x:
        ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_plot_atomically(fig, output)


# Copied from ch04/04_gqa/plot_memory_estimates_gqa.py::save_plot_atomically
def save_plot_atomically(fig, output):
    """Save through the course's `atomic_write`: an interruption never leaves half a figure."""
    output = Path(output)
    with atomic_write(output, "wb") as f:
        fig.savefig(f, format=output.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(description="Plot KV cache vs Gated DeltaNet state memory.")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--emb-dim", type=positive_int, default=2048)
    parser.add_argument("--n-heads", type=positive_int, default=16)
    parser.add_argument("--n-layers", type=positive_int, default=48)
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="bf16")
    parser.add_argument("--min-ctx", type=positive_int, default=128)
    parser.add_argument("--max-ctx", type=positive_int, default=131_072)
    parser.add_argument("--output", type=writable_file, default=Path("deltanet_memory_plot.pdf"))
    args = parser.parse_args(argv)
    if args.emb_dim % args.n_heads != 0:
        parser.error(f"argument --n-heads: {args.n_heads} heads do not divide "
                     f"--emb-dim {args.emb_dim} into equal parts")
    if args.max_ctx < args.min_ctx:
        parser.error(f"argument --max-ctx: {args.max_ctx} is less than --min-ctx {args.min_ctx}")
    return vars(args)


def main(settings):
    """Print the curves' end points; plot them to `settings["output"]`."""
    batch, emb_dim, n_heads, n_layers, dtype, output = (settings[key] for key in (
        "batch", "emb_dim", "n_heads", "n_layers", "dtype", "output"))
    contexts, curves = memory_curves(batch, emb_dim, n_heads, n_layers, dtype,
                                     settings["min_ctx"], settings["max_ctx"])
    for label, values in curves.items():
        print(f"{label}: {values[0]:.4f} GB at {contexts[0]:,} tokens, "
              f"{values[-1]:.4f} GB at {contexts[-1]:,} tokens")
    title = f"{n_layers} layers, emb_dim {emb_dim}, {n_heads} heads, {dtype}, batch {batch}"
    plot_lines(contexts, curves, "context length (tokens)", "cache memory (GB)", title,
               output, log_x=False)
    print(f"Saved {output}")


if __name__ == "__main__":
    main(parse_args())
