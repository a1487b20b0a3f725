"""Plot the KV-cache size against the context length: MHA, GQA, and each with SWA.

    python plot_memory_estimates_swa.py --emb_dim 4096 --n_heads 48 --n_layers 36 \
        --sliding_window_size 2048          # writes kv_bytes_vs_context_length.pdf

The GQA curves use 4 query heads per key/value head, as the book's plot does.
The sliding and regular layers are counted by the estimator's
`distribute_layers` (the book's plot rounds n_layers * a / (a + b) instead, which
can differ from its own estimator by a layer).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from downloads import atomic_write  # noqa: E402
from memory_estimator_swa import DTYPE_BYTES, estimate_totals, ratio_argument  # noqa: E402
from script_helpers import ScriptArgumentParser, positive_int, writable_file  # noqa: E402

N_KV_GROUPS = 4
# Copied from ch04/04_gqa/plot_memory_estimates_gqa.py::CONTEXT_LENGTHS
CONTEXT_LENGTHS = [2**k for k in range(8, 18)]  # 256 ... 131072
SERIES = {"total_mha_allfull": "MHA",
          "total_gqa_allfull": f"GQA ({N_KV_GROUPS} query heads per KV head)",
          "total_mixed_mha": "MHA + SWA", "total_mixed_gqa": "GQA + SWA"}


def swa_curves(emb_dim, n_heads, n_layers, sliding_window_size, batch_size, dtype, swa_ratio):
    """{label: [GB per context length]} for the four series."""
    totals = [estimate_totals(ctx, sliding_window_size, emb_dim, n_heads, n_layers, N_KV_GROUPS,
                              batch_size, dtype, swa_ratio) for ctx in CONTEXT_LENGTHS]
    return {label: [t[key] / 1000**3 for t in totals] for key, label in SERIES.items()}


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
    parser = ScriptArgumentParser(description="Plot KV-cache size vs context length with SWA.")
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--n-heads", type=positive_int, required=True)
    parser.add_argument("--n-layers", type=positive_int, required=True)
    parser.add_argument("--sliding-window-size", type=positive_int, required=True)
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="bf16")
    parser.add_argument("--swa-ratio", type=ratio_argument, default="5:1")
    parser.add_argument("--output", type=writable_file,
                        default=Path("kv_bytes_vs_context_length.pdf"))
    args = parser.parse_args(argv)
    if args.n_heads % N_KV_GROUPS != 0:
        parser.error(f"argument --n-heads: the GQA curves need a multiple of {N_KV_GROUPS}, "
                     f"got {args.n_heads}")
    return vars(args)


def main(settings):
    """Print the largest context's cache sizes; plot all to `settings["output"]`."""
    emb_dim, n_heads, n_layers = settings["emb_dim"], settings["n_heads"], settings["n_layers"]
    window, ratio, output = (settings["sliding_window_size"], settings["swa_ratio"],
                             settings["output"])
    curves = swa_curves(emb_dim, n_heads, n_layers, window, settings["batch_size"],
                        settings["dtype"], ratio)
    for label, values in curves.items():
        print(f"{label}: {values[-1]:.2f} GB at {CONTEXT_LENGTHS[-1]:,} tokens")
    title = (f"KV cache, {n_layers} layers, emb_dim {emb_dim}, {n_heads} heads, "
             f"window {window}, SWA ratio {ratio}")
    plot_lines(CONTEXT_LENGTHS, curves, "context length (tokens)", "KV cache (GB)", title,
               output)
    print(f"Saved {output}")


if __name__ == "__main__":
    main(parse_args())
