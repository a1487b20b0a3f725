"""Grid search over training settings for chapter 5's GPT on "The Verdict".

    python hparam_search.py --max-trials 20 --epochs 2       # a random sample of the grid
    python hparam_search.py --resume                         # continue an interrupted search
    python hparam_search.py --grid my-grid.json              # your own grid
    python hparam_search.py --help

Each trial trains a fresh chapter 5 model (context 256) with one combination of learning
rate, batch size, dropout, weight decay, warm-up, gradient clipping and minimum learning
rate, using appendix D's schedule (linear warm-up, then cosine decay), and records its best
validation loss. The results file is rewritten (atomically) after every trial, so an
interrupted search keeps what it had, and `--resume` skips the trials already in it; a
last row cut short (by an older version, or a copy) is named in one line and run again.
"""

import argparse
import csv
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path

import tiktoken
import torch
from downloads import DownloadError, atomic_write, cache_gpt2_tokenizer_files, published_file
from previous_chapters import (
    GPT_CONFIG_124M,
    GPTModel,
    THE_VERDICT_SHA256,
    THE_VERDICT_URL,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader_v1,
    learning_rate_at,
)
from script_helpers import (
    ScriptArgumentParser,
    exit_with_error,
    add_device_argument,
    existing_file,
    non_negative_int,
    positive_int,
    writable_file,
    writable_folder,
)
from tqdm import tqdm

# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::SCRIPT_DIR
SCRIPT_DIR = Path(__file__).resolve().parent

# The grid: every combination of these values is one trial.
DEFAULT_GRID = {
    "peak_lr": [1e-4, 5e-4, 1e-3],
    "batch_size": [2, 4],
    "drop_rate": [0.0, 0.1],
    "weight_decay": [0.01, 0.1],
    "warmup_steps": [0, 10],
    "max_norm": [1.0, None],  # None: no gradient clipping
    "min_lr": [1e-5, 1e-4],
}
INITIAL_LR = 1e-5  # where the warm-up starts
TINY_CHANGES = {"emb_dim": 32, "n_heads": 2, "n_layers": 2}  # --tiny, for quick checks
RESULT_FIELDS = [*DEFAULT_GRID, "best_val_loss", "final_train_loss", "seconds"]


def _finite_number(value, integer=False):
    kinds = (int,) if integer else (int, float)
    return (isinstance(value, kinds) and not isinstance(value, bool)
            and math.isfinite(value))


# What each grid value must be (checked before any training), and how to say it.
GRID_VALUE_CHECKS = {
    "peak_lr": (lambda v: _finite_number(v) and v > 0, "numbers > 0"),
    "batch_size": (lambda v: _finite_number(v, integer=True) and v >= 1, "whole numbers >= 1"),
    "drop_rate": (lambda v: _finite_number(v) and 0 <= v < 1, "numbers in [0, 1)"),
    "weight_decay": (lambda v: _finite_number(v) and v >= 0, "numbers >= 0"),
    "warmup_steps": (lambda v: _finite_number(v, integer=True) and v >= 0, "whole numbers >= 0"),
    "max_norm": (lambda v: v is None or (_finite_number(v) and v > 0), "numbers > 0 or null"),
    "min_lr": (lambda v: _finite_number(v) and v > 0, "numbers > 0"),
}


def trials_from_grid(grid, max_trials, seed):
    """All combinations of the grid, in a seeded random order, at most `max_trials`.

    A random order means that a search cut short still samples the whole grid
    instead of only varying the last setting.
    """
    names = list(grid)
    trials = [dict(zip(names, values, strict=True))
              for values in itertools.product(*(grid[name] for name in names))]
    random.Random(seed).shuffle(trials)
    return trials[:max_trials] if max_trials else trials


def trial_key(trial):
    """A trial's settings as text, the same whether read back from CSV or not."""
    return json.dumps({name: trial[name] for name in DEFAULT_GRID}, sort_keys=True)


def read_results(path):
    """Rows already in the results file, with settings parsed back to numbers.

    A row that is cut short or unreadable (the end of a file copied or written
    while a run was stopped) is left out, and one line says so: its trial runs
    again.
    """
    if not path.exists():
        return []
    rows, damaged = [], 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({name: json.loads(row[name]) for name in RESULT_FIELDS})
            except (KeyError, TypeError, ValueError):
                damaged += 1
    if damaged:
        print(f"{path}: left out {damaged} incomplete row(s); those trials run again.")
    return rows


def write_results(path, rows):
    """Rewrite the whole results file at once: an interruption leaves the previous one."""
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        writer.writerows({name: json.dumps(row[name]) for name in RESULT_FIELDS}
                         for row in rows)


def run_trial(trial, text, model_config, epochs, eval_freq, device, seed):
    """Train one model with the trial's settings; return its losses and duration."""
    torch.manual_seed(seed)
    split = int(0.9 * len(text))
    config = {**model_config, "drop_rate": trial["drop_rate"]}
    loader_options = dict(batch_size=trial["batch_size"], max_length=config["context_length"],
                          stride=config["context_length"])
    train_loader = create_dataloader_v1(text[:split], drop_last=True, shuffle=True,
                                        **loader_options)
    val_loader = create_dataloader_v1(text[split:], drop_last=False, shuffle=False,
                                      **loader_options)

    model = GPTModel(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=trial["peak_lr"],
                                  weight_decay=trial["weight_decay"])
    total_steps = epochs * len(train_loader)
    warmup_steps = min(trial["warmup_steps"], total_steps)
    best_val, train_loss, step, start = float("inf"), float("nan"), 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            lr = learning_rate_at(step, total_steps, warmup_steps, INITIAL_LR,
                                  trial["peak_lr"], trial["min_lr"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            if trial["max_norm"] is not None and step >= warmup_steps:
                torch.nn.utils.clip_grad_norm_(model.parameters(), trial["max_norm"])
            optimizer.step()
            train_loss = loss.item()
            step += 1
            if step % eval_freq == 0 or step == total_steps:
                model.eval()
                with torch.no_grad():
                    best_val = min(best_val, calc_loss_loader(val_loader, model, device))
                model.train()
    return {**trial, "best_val_loss": best_val, "final_train_loss": train_loss,
            "seconds": round(time.perf_counter() - start, 2)}


def load_text(data_dir):
    return published_file(THE_VERDICT_URL, Path(data_dir) / "the-verdict.txt",
                          sha256=THE_VERDICT_SHA256).read_text(encoding="utf-8")


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it.

    Besides one key per flag, "grid_values" holds the grid to search (--grid's
    checked contents, or DEFAULT_GRID).
    """
    parser = ScriptArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-trials", type=non_negative_int, default=0,
                        help="how many combinations to try (0: the whole grid)")
    parser.add_argument("--epochs", type=positive_int, default=1,
                        help="training epochs per trial")
    parser.add_argument("--eval-freq", type=positive_int, default=5,
                        help="evaluate the validation loss every this many steps")
    parser.add_argument("--seed", type=int, default=123,
                        help="seeds the trial order and every trial's model and data order")
    add_device_argument(parser)
    parser.add_argument("--output", type=writable_file, default="hparam_results.csv",
                        help="results CSV, rewritten after every trial")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results already in --output and skip those trials")
    parser.add_argument("--grid", type=existing_file, help="JSON file with a grid of your own "
                        f"(keys: {', '.join(DEFAULT_GRID)}; each a list of values)")
    parser.add_argument("--data-dir", default=str(SCRIPT_DIR),
                        help="folder for the-verdict.txt (downloaded if missing)")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny model instead of GPT-2 124M, for quick checks")
    settings = vars(parser.parse_args(argv))
    settings["grid_values"] = read_grid(parser, settings["grid"])
    data_dir, output, grid = settings["data_dir"], settings["output"], settings["grid"]
    if not (Path(data_dir) / "the-verdict.txt").is_file():  # it will be downloaded there
        try:
            writable_folder(data_dir)
        except argparse.ArgumentTypeError as err:
            parser.error(f"argument --data-dir: {err}")
    if grid is not None and output.exists() and output.samefile(grid):
        parser.error("argument --output: it is the --grid file, which is only read; "
                     "choose another file")
    if output.exists() and not settings["resume"]:
        parser.error(f"argument --output: {output} exists: pass --resume to continue "
                     "that search, or choose another file")
    return settings


def read_grid(parser, path):
    if path is None:
        return DEFAULT_GRID
    try:
        grid = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        parser.error(f"argument --grid: cannot read {path} as JSON ({error})")
    if (not isinstance(grid, dict) or set(grid) != set(DEFAULT_GRID)
            or not all(isinstance(v, list) and v for v in grid.values())):
        parser.error(f"argument --grid: {path} must map exactly these keys to non-empty lists: "
                     f"{', '.join(DEFAULT_GRID)}")
    for name, (valid, expected) in GRID_VALUE_CHECKS.items():
        bad = [value for value in grid[name] if not valid(value)]
        if bad:
            parser.error(f"argument --grid: {name} values must be {expected}, got {bad[0]!r}")
    return grid


def main(settings):
    """Run the trials `settings` (parse_args's dict) asks for; rewrite --output after each."""
    device, output, seed = settings["device"], settings["output"], settings["seed"]
    cache_gpt2_tokenizer_files()
    tokenizer = tiktoken.get_encoding("gpt2")
    try:
        text = load_text(settings["data_dir"])
    except DownloadError as error:
        sys.exit(f"error: {error}")
    model_config = {**GPT_CONFIG_124M, "context_length": 256,
                    **(TINY_CHANGES if settings["tiny"] else {})}
    num_tokens = len(tokenizer.encode(text))
    if num_tokens // 10 < model_config["context_length"] + 1:
        sys.exit("error: the validation part of the text is shorter than one context")
    context = model_config["context_length"]  # windows as run_trial's training loader cuts them
    train_tokens = len(tokenizer.encode(text[:int(0.9 * len(text))],
                                        allowed_special={"<|endoftext|>"}))
    train_windows = len(range(0, train_tokens - context, context))
    largest_batch = max(settings["grid_values"]["batch_size"])
    if largest_batch > train_windows:
        exit_with_error(f"argument --grid: batch_size {largest_batch} is more than the "
                        f"{train_windows} training windows of the text: those trials would "
                        "train 0 steps")

    results = read_results(output) if settings["resume"] else []
    done = {trial_key(row) for row in results}
    trials = [t for t in trials_from_grid(settings["grid_values"], settings["max_trials"], seed)
              if trial_key(t) not in done]
    print(f"{len(done)} trials already done, {len(trials)} to run on {device}",
          file=sys.stderr)
    for trial in tqdm(trials, desc="trials", unit="trial"):
        results.append(run_trial(trial, text, model_config, settings["epochs"],
                                 settings["eval_freq"], device, seed))
        write_results(output, results)

    if results:
        best = min(results, key=lambda row: row["best_val_loss"])
        print(f"Best of {len(results)} trials: validation loss {best['best_val_loss']:.3f} with "
              + ", ".join(f"{name}={best[name]}" for name in DEFAULT_GRID))


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
