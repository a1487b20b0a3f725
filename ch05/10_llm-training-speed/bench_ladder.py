"""Climb the ladder on this machine: tokens/s, peak memory and losses after each step.

    python bench_ladder.py                           # the CPU table of README.md
    python bench_ladder.py --rounds 1 --max-steps 6  # a quicker look
    python bench_ladder.py --device cuda             # the GPU table (all ten steps)

Every row is one run of `01_opt_single_gpu.py` in a fresh process, so each
row's peak memory is its own and the CPU levers that work through the
environment (a caching allocator via LD_PRELOAD, glibc's malloc tunables) can
be set per row. The rows are run round-robin, `--rounds` times, so that on a
shared machine all rows see the same load; the table shows each row's median.
All runs train the same model from the same weights on the same batches, so
their losses must agree: the table shows the largest difference to the
baseline's losses (a row that changes the training, like a larger batch, says
so instead).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int
from speed_ladder import LADDER_MODELS, STEPS, steps_that_cannot_run

SCRIPT = Path(__file__).resolve().parent / "01_opt_single_gpu.py"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"            # Debian: libjemalloc2
# glibc's own levers, no install needed: blocks up to 32 MiB (the largest threshold glibc
# accepts) come from the heap instead of fresh mmaps that are unmapped again on free, and
# the heap is never trimmed, so freed memory is reused without new page faults.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295"


@dataclass
class Row:
    label: str
    steps: tuple
    env: dict = field(default_factory=dict)
    threads: int | None = None
    same_training: bool = True  # False: the losses are not expected to match the baseline
    results: list = field(default_factory=list)


def ladder_rows(device, cpu_levers, threads):
    """The book's steps, cumulative as in its table, then the CPU levers.

    On a CPU, bfloat16 is measured but not kept (it is slower there), and
    torch.compile comes last: compiling takes minutes on a small CPU, so the
    other rows are measured without it and it is measured once, on top.
    """
    cpu = device.type == "cpu"
    order = [n for n in STEPS if not (cpu and n == 8)] + ([8] if cpu else [])
    rows, kept = [Row("baseline (00_orig.py)", ())], []
    for number in order:
        if steps_that_cannot_run((number,), device):
            continue
        steps = tuple(sorted((*kept, number)))
        if cpu and number in (5, 10):  # measured, not kept: slower / another training
            rows.append(Row(f"{number}. {STEPS[number].name} (not kept)", steps,
                            same_training=number != 10))
            continue
        if cpu and number == 8:
            break  # measured below, with the best allocator
        rows.append(Row(f"{number}. {STEPS[number].name}", steps, same_training=number != 10))
        kept.append(number)
    if cpu and cpu_levers:
        best = tuple(kept)
        for name, env in (("jemalloc", {"LD_PRELOAD": JEMALLOC}),
                          ("glibc malloc tunables", {"GLIBC_TUNABLES": GLIBC_TUNABLES})):
            if "LD_PRELOAD" in env and not Path(env["LD_PRELOAD"]).exists():
                print(f"skipping {name}: {env['LD_PRELOAD']} is not installed")
                continue
            rows.append(Row(f"+ {name}", best, env))
        jemalloc = {"LD_PRELOAD": JEMALLOC} if Path(JEMALLOC).exists() else {}
        for count in threads:
            rows.append(Row(f"+ jemalloc, {count} thread(s)", best, jemalloc, threads=count))
        if not steps_that_cannot_run((8,), device):
            rows.append(Row(f"8. {STEPS[8].name} (+ jemalloc)", tuple(sorted((*best, 8))),
                            jemalloc))
    return rows


def runner_command(model, context_length, batch_size, large_batch_size, max_steps, device):
    """The 01_opt_single_gpu.py command line that every row shares (a row adds its steps)."""
    return [sys.executable, str(SCRIPT), "--model", model, "--context-length",
            str(context_length), "--batch-size", str(batch_size), "--large-batch-size",
            str(large_batch_size), "--max-steps", str(max_steps), "--epochs", "1000",
            "--eval-freq", "100000", "--no-sample", "--device", device.type]


def run_row(row, command, all_threads, log_path):
    """Run `row` with the shared `command`; its results from the JSON file it writes."""
    command = [*command, "--steps", ",".join(map(str, row.steps)) or "none",
               "--loss-log", str(log_path)]
    threads = row.threads if row.threads is not None else all_threads
    if threads is not None:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, **row.env})
    if result.returncode != 0:
        sys.exit(f"error: {row.label} failed:\n{result.stderr[-2000:]}")
    return json.loads(log_path.read_text())


def print_ladder_table(rows, rounds):
    baseline = statistics.median(r["tokens_per_second"] for r in rows[0].results)
    base_losses = rows[0].results[0]["losses"]
    print(f"\n| Step (cumulative) | tok/s (median of {rounds}) | x baseline "
          "| peak memory (GB) | largest loss difference to the baseline |")
    print("|---|---|---|---|---|")
    for row in rows:
        speed = statistics.median(r["tokens_per_second"] for r in row.results)
        memory = statistics.median(r["peak_memory_gb"] for r in row.results)
        if row.same_training:
            diff = max(abs(a - b) for r in row.results
                       for a, b in zip(r["losses"], base_losses, strict=True))
            loss_text = f"{diff:.1e}"
        else:
            loss_text = "other batches (not comparable)"
        print(f"| {row.label} | {speed:,.0f} | {speed / baseline:.2f} | {memory:.2f} "
              f"| {loss_text} |")


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (--threads: a list)."""
    parser = ScriptArgumentParser(description="Measure the training-speed ladder on this "
                                              "machine, every row in a fresh process.")
    parser.add_argument("--model", choices=("124M", "small", "tiny"), default="small",
                        help="model size (01_opt_single_gpu.py --model)")
    parser.add_argument("--context-length", type=positive_int, default=None,
                        help="tokens per sequence (None: 128, or the model's context if "
                             "that is shorter)")
    parser.add_argument("--batch-size", type=positive_int, default=2,
                        help="sequences per batch")
    parser.add_argument("--large-batch-size", type=positive_int, default=4,
                        help="sequences per batch under step 10")
    parser.add_argument("--max-steps", type=positive_int, default=3,
                        help="training steps per run (the first is left out as warm-up)")
    parser.add_argument("--rounds", type=positive_int, default=2,
                        help="times every row is run, round-robin")
    parser.add_argument("--threads", default="1",
                        help="comma-separated thread counts to measure as extra rows")
    parser.add_argument("--no-cpu-levers", action="store_true",
                        help="leave out the allocator, thread and torch.compile rows on CPUs")
    parser.add_argument("--all-threads", type=positive_int, default=None,
                        help="run every row with this many threads (None: PyTorch's choice)")
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    longest = LADDER_MODELS[settings["model"]]["context_length"]
    if settings["context_length"] is None:
        settings["context_length"] = min(128, longest)
    elif settings["context_length"] > longest:  # else every row would fail the same way
        parser.error(f"argument --context-length: {settings['context_length']} is longer "
                     f"than the {settings['model']} model's {longest}")
    try:
        settings["threads"] = [positive_int(t) for t in settings["threads"].split(",") if t]
    except Exception as err:
        parser.error(f"argument --threads: {err}")
    return settings


def main(argv=None):
    settings = parse_args(argv)
    device, rounds, all_threads = settings["device"], settings["rounds"], settings["all_threads"]
    rows = ladder_rows(device, not settings["no_cpu_levers"], settings["threads"])
    command = runner_command(settings["model"], settings["context_length"],
                             settings["batch_size"], settings["large_batch_size"],
                             settings["max_steps"], device)
    print(f"{platform.processor() or platform.machine()}, {cpu_name()}, {os.cpu_count()} "
          f"cores, torch {torch.__version__}, device {device}")
    print(f"threads: {all_threads or 'PyTorch default'} (unless a row says otherwise)")
    print(f"model {settings['model']}, context {settings['context_length']}, "
          f"batch {settings['batch_size']}, {settings['max_steps']} steps per run, "
          f"{rounds} round(s) of {len(rows)} rows")
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(rounds):
            for index, row in enumerate(rows):
                load = os.getloadavg()[0]
                result = run_row(row, command, all_threads, Path(folder) / f"row{index}.json")
                row.results.append(result)
                diff = max(abs(a - b) for a, b in zip(result["losses"],
                                                      rows[0].results[-1]["losses"],
                                                      strict=True))
                print(f"round {round_number + 1}, {row.label}: "
                      f"{result['tokens_per_second']:,.0f} tok/s, peak "
                      f"{result['peak_memory_gb']:.2f} GB, max loss difference {diff:.1e}, "
                      f"load before {load:.2f}", flush=True)
    print_ladder_table(rows, rounds)
    print(f"\nLoad average at the end (1, 5, 15 min): {os.getloadavg()}")


# Copied from ch05/07_gpt_to_llama/benchmark.py::cpu_name
def cpu_name():
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
