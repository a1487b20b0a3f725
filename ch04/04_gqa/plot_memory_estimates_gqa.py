"""Plot the KV-cache size against the context length for MHA and several GQA group counts.

    python plot_memory_estimates_gqa.py            # writes kv_bytes_vs_context_length.pdf

The book's settings: 24 heads, emb_dim 2048, 48 layers, batch 1, bfloat16,
contexts 256 ... 131,072 tokens, GQA with 4, 8, 12 and 24 query heads per
key/value head.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from downloads import atomic_write  # noqa: E402
from memory_estimator_gqa import DTYPE_BYTES, calc_kv_bytes_total  # noqa: E402
from script_helpers import ScriptArgumentParser, writable_file  # noqa: E402

N_HEADS, EMB_DIM, N_LAYERS, BATCH, DTYPE = 24, 2048, 48, 1, "bf16"
CONTEXT_LENGTHS = [2**k for k in range(8, 18)]  # 256 ... 131072
GROUP_SIZES = [4, 8, 12, 24]


def bytes_convert(n):
    """Bytes as decimal gigabytes with two decimals (no unit)."""
    return f"{n / 1000**3:.2f}"


def savings_percent(total_mha, total_gqa):
    """How much smaller the GQA cache is, in percent of the MHA cache."""
    return 100 * (1 - total_gqa / total_mha)


def gqa_curves():
    """{label: [GB per context length]} for MHA and each GQA group size."""
    def gigabytes(n_kv_heads):
        return [calc_kv_bytes_total(BATCH, ctx, EMB_DIM, N_HEADS, n_kv_heads, N_LAYERS,
                                    DTYPE_BYTES[DTYPE]) / 1000**3 for ctx in CONTEXT_LENGTHS]

    curves = {"MHA (24 key/value heads)": gigabytes(N_HEADS)}
    for group_size in GROUP_SIZES:
        n_kv_heads = N_HEADS // group_size
        curves[f"GQA, {group_size} query heads per KV head ({n_kv_heads} KV heads)"] = \
            gigabytes(n_kv_heads)
    return curves


def plot_abs_kv_vs_context_multi_groups(output):
    """Draw every curve of `gqa_curves()` (log-2 x axis) and save the figure to `output`."""
    plot_lines(CONTEXT_LENGTHS, gqa_curves(), "context length (tokens)", "KV cache (GB)",
               f"KV cache, {N_LAYERS} layers, emb_dim {EMB_DIM}, {N_HEADS} heads, {DTYPE}", output)


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


def save_plot_atomically(fig, output):
    """Save through the course's `atomic_write`: an interruption never leaves half a figure."""
    output = Path(output)
    with atomic_write(output, "wb") as f:
        fig.savefig(f, format=output.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)


def parse_args(argv=None):
    """The command line as a dict of plain values: the figure's path."""
    parser = ScriptArgumentParser(description="Plot KV-cache size vs context length, MHA vs GQA.")
    parser.add_argument("--output", type=writable_file,
                        default=Path("kv_bytes_vs_context_length.pdf"),
                        help="the figure to write (.pdf or .png)")
    return vars(parser.parse_args(argv))


def main(settings):
    """Print the largest context's cache sizes; plot all to `settings["output"]`."""
    output = settings["output"]
    curves = gqa_curves()
    mha = next(iter(curves.values()))
    print(f"KV cache at {CONTEXT_LENGTHS[-1]:,} tokens:")
    for label, values in curves.items():
        print(f"  {label}: {bytes_convert(values[-1] * 1000**3)} GB "
              f"(saves {savings_percent(mha[-1], values[-1]):.2f}% vs MHA)")
    plot_abs_kv_vs_context_multi_groups(output)
    print(f"Saved {output}")


if __name__ == "__main__":
    main(parse_args())
