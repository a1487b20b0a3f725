"""Plot the KV-cache size against the context length for MHA and MLA with several latent sizes.

    python plot_memory_estimates_mla.py            # writes kv_bytes_vs_context_length.pdf

The book's settings: 24 heads, emb_dim 2048, 48 layers, batch 1, bfloat16,
latent dimensions 1024, 512, 256 and 64. (The book's plot divides 2048 by 24
heads without rounding; we use the estimator's rounded-up head_dim 86, as its
printed figures do, so the MHA curve is 0.8% higher than the book's.)
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from downloads import atomic_write  # noqa: E402
from memory_estimator_mla import (DTYPE_BYTES, calc_kv_bytes_total,  # noqa: E402
                                  calc_mla_bytes_total)
from script_helpers import ScriptArgumentParser, writable_file  # noqa: E402

N_HEADS, EMB_DIM, N_LAYERS, BATCH, DTYPE = 24, 2048, 48, 1, "bf16"
# Copied from ch04/04_gqa/plot_memory_estimates_gqa.py::CONTEXT_LENGTHS
CONTEXT_LENGTHS = [2**k for k in range(8, 18)]  # 256 ... 131072
LATENT_DIMS = [1024, 512, 256, 64]


def mla_curves():
    """{label: [GB per context length]} for MHA and MLA with each latent size."""
    nbytes = DTYPE_BYTES[DTYPE]
    curves = {"MHA": [calc_kv_bytes_total(BATCH, ctx, EMB_DIM, N_HEADS, N_HEADS, N_LAYERS,
                                          nbytes) / 1000**3 for ctx in CONTEXT_LENGTHS]}
    for latent_dim in LATENT_DIMS:
        curves[f"MLA, latent_dim {latent_dim}"] = [
            calc_mla_bytes_total(BATCH, ctx, N_LAYERS, latent_dim, nbytes) / 1000**3
            for ctx in CONTEXT_LENGTHS]
    return curves


def plot_abs_kv_vs_context_multiple(output):
    """Draw every curve of `mla_curves()` (log-2 x axis) and save the figure to `output`."""
    plot_lines(CONTEXT_LENGTHS, mla_curves(), "context length (tokens)", "KV cache (GB)",
               f"KV cache, {N_LAYERS} layers, emb_dim {EMB_DIM}, {N_HEADS} heads, {DTYPE}", output)


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
    """The command line as a dict of plain values: the figure's path."""
    parser = ScriptArgumentParser(description="Plot KV-cache size vs context length, MHA vs MLA.")
    parser.add_argument("--output", type=writable_file,
                        default=Path("kv_bytes_vs_context_length.pdf"),
                        help="the figure to write (.pdf or .png)")
    return vars(parser.parse_args(argv))


def main(settings):
    """Print the largest context's cache sizes; plot all to `settings["output"]`."""
    output = settings["output"]
    for label, values in mla_curves().items():
        print(f"{label}: {values[-1]:.2f} GB at {CONTEXT_LENGTHS[-1]:,} tokens")
    plot_abs_kv_vs_context_multiple(output)
    print(f"Saved {output}")


if __name__ == "__main__":
    main(parse_args())
