"""Time every multi-head attention implementation side by side on this machine.

    python benchmark.py                                  # the book's sizes
    python benchmark.py --batch-size 2 --num-tokens 512 --warmup 0

For each implementation in `mha_implementations.IMPLEMENTATIONS` it measures
a forward pass (inference: eval mode, no gradients) and a forward + backward
pass (training), with warm-up calls first and several timed repeats. The
implementations take turns within each repeat, so a machine that gets busier
during the run slows all of them alike. It prints a table with each median
time and its ratio to `F.scaled_dot_product_attention` (SDPA) measured in the
same run, and saves a bar chart as PNG.
"""

import os
import platform
import statistics
import time
from pathlib import Path

import torch
from mha_implementations import IMPLEMENTATIONS, MHAPyTorchFlexAttention, unavailable_reason
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    non_negative_int,
    positive_int,
    resolve_device,
    synchronize,
    writable_file,
)

REFERENCE = "SDPA (PyTorch picks kernel)"
MODES = ("forward", "forward+backward")


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (the device a torch.device)."""
    parser = ScriptArgumentParser(
        description="Benchmark causal multi-head attention implementations."
    )
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--num-tokens", type=positive_int, default=1024,
                        help="sequence length (also the modules' context_length)")
    parser.add_argument("--emb-dim", type=positive_int, default=768, help="d_in = d_out")
    parser.add_argument("--num-heads", type=positive_int, default=12)
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls first")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed calls per mode")
    parser.add_argument("--compile-flex", action="store_true",
                        help="run FlexAttention under torch.compile (its intended use)")
    parser.add_argument("--plot", type=writable_file, default=Path("mha-benchmark.png"),
                        help="where to save the bar chart (PNG)")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)
    if args.emb_dim % args.num_heads:
        parser.error(f"argument --num-heads: {args.num_heads} does not divide "
                     f"--emb-dim {args.emb_dim}")
    return vars(args)


def describe_machine(device):
    """One line naming the hardware the numbers come from."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU (MPS), {platform.machine()}"
    cpu_name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    return (f"{cpu_name}, {os.cpu_count()} logical CPUs, "
            f"{torch.get_num_threads()} torch threads")


def build_modules(names, emb_dim, num_heads, context_length, device, compile_flex=False):
    """Instantiate the implementations that run on `device`; report the others."""
    modules, skipped = {}, {}
    for name in names:
        cls = IMPLEMENTATIONS[name]
        reason = unavailable_reason(cls, device)
        if reason is not None:
            skipped[name] = reason
            continue
        module = cls(emb_dim, emb_dim, context_length, dropout=0.0, num_heads=num_heads)
        module = module.to(device)
        if compile_flex and cls is MHAPyTorchFlexAttention:
            module = torch.compile(module)
        modules[name] = module
    return modules, skipped


def forward_step(module, x):
    """Inference: eval mode and no autograd bookkeeping."""
    module.eval()
    with torch.no_grad():
        module(x)


def forward_backward_step(module, x):
    """Training: one forward and one backward pass (gradients discarded)."""
    module.train()
    module.zero_grad(set_to_none=True)
    module(x).sum().backward()


def seconds_for(step, module, x, device):
    synchronize(device)  # GPU work is queued: wait before reading the clock
    start = time.perf_counter()
    step(module, x)
    synchronize(device)
    return time.perf_counter() - start


def time_side_by_side(modules, x, step, warmup, repeats, device):
    """{name: [seconds, ...]} or {name: "reason"} when `step` fails for a module.

    Warm-up calls (not timed) let PyTorch pick kernels, allocate memory and, for
    compiled modules, compile. Then every repeat times each module once, in turn.
    A module whose call raises (FlexAttention has no backward pass on a CPU) is
    dropped from the run with the reason, whether that happens while warming
    up or, with no warm-up, in the first timed call.
    """
    times, failures = {name: [] for name in modules}, {}

    def attempt(name, call):
        try:
            call()
        except (RuntimeError, NotImplementedError) as err:
            failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
            del times[name]

    for name in list(times):
        for _ in range(warmup):
            if name in times:
                attempt(name, lambda name=name: step(modules[name], x))
    for _ in range(repeats):
        for name in list(times):
            attempt(name, lambda name=name: times[name].append(
                seconds_for(step, modules[name], x, device)))
    return {**times, **failures}


def run_benchmark(batch_size=8, num_tokens=1024, emb_dim=768, num_heads=12, warmup=2,
                  repeats=5, device="auto", compile_flex=False, seed=123,
                  names=tuple(IMPLEMENTATIONS)):
    """Measure every implementation; return a dict the printing/plotting use."""
    device = resolve_device(device) if isinstance(device, str) else device
    torch.manual_seed(seed)
    modules, skipped = build_modules(names, emb_dim, num_heads, num_tokens, device,
                                     compile_flex)
    x = torch.randn(batch_size, num_tokens, emb_dim, device=device)
    steps = {"forward": forward_step, "forward+backward": forward_backward_step}
    results = {mode: time_side_by_side(modules, x, steps[mode], warmup, repeats, device)
               for mode in MODES}
    return {
        "machine": describe_machine(device),
        "device": str(device),
        "torch": torch.__version__,
        "shape": dict(batch_size=batch_size, num_tokens=num_tokens, emb_dim=emb_dim,
                      num_heads=num_heads),
        "warmup": warmup,
        "repeats": repeats,
        "results": results,
        "skipped": skipped,
    }


def summarize(report):
    """Rows (name, {mode: (median ms, ratio to SDPA) or reason}) in table order."""
    medians = {
        mode: {name: statistics.median(t) * 1000 for name, t in timings.items()
               if not isinstance(t, str)}
        for mode, timings in report["results"].items()
    }
    rows = []
    for name in IMPLEMENTATIONS:
        if name in report["skipped"]:
            rows.append((name, {mode: report["skipped"][name] for mode in MODES}))
            continue
        if name not in report["results"]["forward"]:
            continue  # not selected for this run
        cells = {}
        for mode in MODES:
            if name in medians[mode]:
                reference = medians[mode].get(REFERENCE)
                ratio = medians[mode][name] / reference if reference else float("nan")
                cells[mode] = (medians[mode][name], ratio)
            else:
                cells[mode] = report["results"][mode][name]
        rows.append((name, cells))
    return rows


def format_table(report):
    shape = report["shape"]
    lines = [
        f"Machine: {report['machine']}",
        f"Device: {report['device']}, torch {report['torch']}",
        f"Input: batch {shape['batch_size']} x {shape['num_tokens']} tokens x "
        f"{shape['emb_dim']} dims, {shape['num_heads']} heads; "
        f"median of {report['repeats']} runs after {report['warmup']} warm-up calls",
        "",
        f"| {'implementation':<36} | {'forward ms':>10} | {'vs SDPA':>7} "
        f"| {'fwd+bwd ms':>10} | {'vs SDPA':>7} |",
        f"|{'-' * 38}|{'-' * 11}:|{'-' * 8}:|{'-' * 11}:|{'-' * 8}:|",
    ]
    notes = []
    for name, cells in summarize(report):
        parts = []
        for mode in MODES:
            cell = cells[mode]
            if isinstance(cell, str):
                notes.append(f"{name}, {mode}: not run ({cell})")
                parts.append(f" {'n/a':>10} | {'':>7} ")
            else:
                parts.append(f" {cell[0]:>10.1f} | {cell[1]:>6.2f}x ")
        lines.append(f"| {name:<36} |" + "|".join(parts) + "|")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def plot_report(report, path=None):
    """Bar chart of the median times, one panel per mode; saved when `path` is given."""
    import matplotlib.pyplot as plt

    rows = summarize(report)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 1.8), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        names = [name for name, _ in rows]
        values = [cells[mode][0] if not isinstance(cells[mode], str) else 0.0
                  for _, cells in rows]
        colors = ["tab:orange" if name == REFERENCE else "tab:blue" for name in names]
        ax.barh(names, values, color=colors)
        for y, (value, (_, cells)) in enumerate(zip(values, rows, strict=True)):
            label = "n/a" if isinstance(cells[mode], str) else f"{cells[mode][1]:.2f}x"
            ax.text(value, y, f" {label}", va="center", fontsize=8)
        ax.set_title(f"{mode} (median ms; label = time / SDPA)")
        ax.set_xlabel("milliseconds")
    axes[0].invert_yaxis()  # first implementation on top (the panels share the y axis)
    shape = report["shape"]
    fig.suptitle(
        f"{report['machine']} | torch {report['torch']} | batch {shape['batch_size']}, "
        f"{shape['num_tokens']} tokens, {shape['emb_dim']} dims, {shape['num_heads']} heads",
        fontsize=9,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def main(settings):
    """Time every implementation as `settings` (parse_args's dict) says; print and plot."""
    report = run_benchmark(
        batch_size=settings["batch_size"], num_tokens=settings["num_tokens"],
        emb_dim=settings["emb_dim"], num_heads=settings["num_heads"],
        warmup=settings["warmup"], repeats=settings["repeats"], device=settings["device"],
        compile_flex=settings["compile_flex"], seed=settings["seed"],
    )
    print(format_table(report))
    plot_report(report, settings["plot"])
    print(f"\nSaved the plot to {settings['plot']}")


if __name__ == "__main__":
    main(parse_args())
