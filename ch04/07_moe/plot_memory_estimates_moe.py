"""Plot active and total feed-forward parameters against the number of experts.

    python plot_memory_estimates_moe.py --emb_dim 7168 --hidden_dim 28672 --top_k 8

By default the experts are sized to match the dense layer's parameters
(`--no_match_dense` keeps the dense hidden size per expert, so the total grows
with the number of experts). Writes `--save` (default
`moe_params_vs_experts.pdf`; the book's script shows the plot instead).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from downloads import atomic_write  # noqa: E402
from memory_estimator_moe import (FFN_MATRICES, active_params,  # noqa: E402
                                  estimate_params_and_hidden)
from script_helpers import ScriptArgumentParser, positive_int, writable_file  # noqa: E402

EXPERT_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384, 512]


def calc_moe_active_and_total(emb_dim, hidden_dim, ffn_type, num_experts, top_k,
                              match_dense=True):
    """(active parameters per token, total parameters) of one MoE layer."""
    est = estimate_params_and_hidden(emb_dim, hidden_dim, ffn_type, num_experts, match_dense)
    return active_params(est, top_k), est["moe_total"]


def expert_curve(emb_dim, hidden_dim, ffn_type, top_k, max_experts, match_dense):
    """(expert counts, active, total): counts from EXPERT_COUNTS in [top_k, max_experts]."""
    counts = [n for n in EXPERT_COUNTS if top_k <= n <= max_experts]
    pairs = [calc_moe_active_and_total(emb_dim, hidden_dim, ffn_type, n, top_k, match_dense)
             for n in counts]
    return counts, [a for a, _ in pairs], [t for _, t in pairs]


def plot_active_params_vs_experts(emb_dim, hidden_dim, ffn_type="swiglu", top_k=2,
                                  max_experts=512, y_log=True, save_path=None, match_dense=True):
    """Plot active and total parameters (and the dense layer's) vs the number of experts."""
    counts, active, total = expert_curve(emb_dim, hidden_dim, ffn_type, top_k, max_experts,
                                         match_dense)
    dense = estimate_params_and_hidden(emb_dim, hidden_dim, ffn_type, 1)["dense_params"]
    curves = {f"active per token (top-{top_k})": active, "total": total,
              "dense FFN": [dense] * len(counts)}
    title = (f"{ffn_type} MoE, emb_dim {emb_dim}, dense hidden {hidden_dim}"
             + (", matched to dense" if match_dense else ""))
    plot_lines(counts, curves, "number of experts", "parameters per MoE layer", title,
               save_path, log_y=y_log)
    return counts, active, total


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
    parser = ScriptArgumentParser(description="Plot MoE active/total parameters vs experts.")
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--hidden-dim", type=positive_int, required=True)
    parser.add_argument("--ffn-type", choices=sorted(FFN_MATRICES), default="swiglu")
    parser.add_argument("--top-k", type=positive_int, default=2)
    parser.add_argument("--max-experts", type=positive_int, default=512)
    parser.add_argument("--no-log", action="store_true", help="linear y axis")
    parser.add_argument("--save", type=writable_file, default=Path("moe_params_vs_experts.pdf"))
    parser.add_argument("--no-match-dense", action="store_true")
    args = parser.parse_args(argv)
    if args.top_k > args.max_experts:
        parser.error(f"argument --top-k: {args.top_k} is more than "
                     f"--max-experts {args.max_experts}")
    return vars(args)


def main(settings):
    """Print the curves' parameter counts; plot them to `settings["save"]`."""
    counts, active, total = plot_active_params_vs_experts(
        settings["emb_dim"], settings["hidden_dim"], settings["ffn_type"], settings["top_k"],
        settings["max_experts"], y_log=not settings["no_log"], save_path=settings["save"],
        match_dense=not settings["no_match_dense"])
    for n, a, t in zip(counts, active, total, strict=True):
        print(f"{n:>4} experts: {a:>14,} active, {t:>16,} total")
    print(f"Saved {settings['save']}")


if __name__ == "__main__":
    main(parse_args())
