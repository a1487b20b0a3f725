"""Measure prepare_dataset.py (MB of text/s) and pretraining_simple.py (tokens/s).

    python bench_gutenberg.py                        # synthetic books, a mid-size model
    python bench_gutenberg.py --model 124M --steps 10
    python bench_gutenberg.py --books-dir gutenberg/data/raw   # your own books

Part 1 tokenizes the same books three ways and checks that all three give
the same token ids:

- a plain loop: one process reads, cleans and encodes each book and writes
  one array at the end (the simplest way to do it),
- prepare_dataset.py's code with 1 worker process, and with 2.

Part 2 trains the same model (same initial weights, same batches, same
AdamW) for --steps steps with pretraining_simple.py's loop and with chapter
5's `train_model_simple`, in float32 and under bfloat16 autocast, one after
the other in this process, and checks that the two float32 runs end with
the same weights. Both loops evaluate once and print one sample, as they do
with these settings. Without --books-dir the books are made from Edith
Wharton's "The Verdict" (downloaded, or from $LLMS_FROM_SCRATCH_MIRROR):
its paragraphs in a different seeded order for each book, wrapped in
Project Gutenberg's header and footer. Run it on an otherwise idle machine:
it prints what it measured and on what.
"""

import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import tiktoken
import torch
from downloads import cache_gpt2_tokenizer_files, download_file
from prepare_dataset import (MB, TOKEN_DTYPE, list_books, strip_gutenberg_boilerplate,
                             tokenize_to_shards)
from pretraining_simple import (Cluster, Position, TokenShards, Windows, autocast_for,
                                device_for_process, parse_args, pretrain)
from previous_chapters import GPT_CONFIG_124M, GPTModel, train_model_simple
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize

# Copied from ch05/01_main-chapter-code/gpt_utils.py::THE_VERDICT_URL
THE_VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
# Copied from ch05/01_main-chapter-code/gpt_utils.py::THE_VERDICT_SHA256
THE_VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
MODELS = {"124M": GPT_CONFIG_124M,
          "small": {**GPT_CONFIG_124M, "emb_dim": 256, "n_heads": 4, "n_layers": 4}}


def make_books(folder, count, repeats):
    """`count` Gutenberg-style books, each `repeats` shuffled copies of The Verdict."""
    story = download_file(THE_VERDICT_URL, Path(__file__).parent / "the-verdict.txt",
                          sha256=THE_VERDICT_SHA256).read_text(encoding="utf-8")
    paragraphs = [p for p in story.split("\n\n") if p.strip()]
    rng = random.Random(123)
    for number in range(count):
        title = f"BENCHMARK BOOK {number}"
        body = "\n\n".join(rng.sample(paragraphs, len(paragraphs)) * repeats)
        (folder / f"book{number:03d}.txt").write_text(
            f"Title: {title}\nLanguage: English\n\n"
            f"*** START OF THE PROJECT GUTENBERG EBOOK {title} ***\n{body}\n"
            f"*** END OF THE PROJECT GUTENBERG EBOOK {title} ***\nLicense text.\n")


def plain_loop(books_dir, output_file):
    """Read, clean and encode each book in turn; write all ids at once."""
    tokenizer = tiktoken.get_encoding("gpt2")
    ids = []
    for name in list_books(books_dir):
        text = (books_dir / name).read_text(encoding="utf-8")
        if ids:
            ids.append(50256)
        ids.extend(tokenizer.encode_ordinary(strip_gutenberg_boilerplate(text)))
    np.array(ids, dtype=TOKEN_DTYPE).tofile(output_file)
    return np.fromfile(output_file, dtype=TOKEN_DTYPE)


def bench_prepare(books_dir, work_dir):
    """MB of text per second for the plain loop and 1 and 2 workers; returns the shards."""
    megabytes = sum((books_dir / name).stat().st_size for name in list_books(books_dir)) / MB
    print(f"\nPart 1: tokenizing {megabytes:.1f} MB in {len(list_books(books_dir))} books")
    cache_gpt2_tokenizer_files()
    tiktoken.get_encoding("gpt2")  # loaded once before timing (worker processes load their own)
    start = time.perf_counter()
    reference = plain_loop(books_dir, work_dir / "plain.bin")
    rows = [("plain loop (1 process)", time.perf_counter() - start)]
    for workers in (1, 2):
        output = work_dir / f"shards-{workers}"
        start = time.perf_counter()
        tokenize_to_shards(books_dir, output, shard_tokens=2**20, workers=workers,
                           progress=False)
        rows.append((f"prepare_dataset.py, {workers} worker(s)", time.perf_counter() - start))
        shards = TokenShards(output)
        same = np.array_equal(shards.read(0, shards.total_tokens), reference)
        print(f"  {workers} worker(s): same token ids as the plain loop: {same}")
        if not same:
            raise SystemExit("the token ids differ: the comparison is not valid")
    print(f"  {'method':<34}{'seconds':>9}{'MB/s':>8}")
    for name, seconds in rows:
        print(f"  {name:<34}{seconds:>9.2f}{megabytes / seconds:>8.2f}")
    return work_dir / "shards-2"


def training_setup(shards_dir, work_dir, bench, dtype, name):
    """pretraining_simple's objects for one timed run, from its own argument parser.

    `bench` holds this script's settings (what `parse_bench_args` returns).
    """
    _, settings = parse_args([
        "--data-dir", str(shards_dir), "--output-dir", str(work_dir / name),
        "--context-length", str(bench["context_length"]),
        "--batch-size", str(bench["batch_size"]), "--max-steps", str(bench["steps"]),
        "--eval-freq", str(10**9), "--eval-iter", "1", "--print-sample-iter", str(10**9),
        "--save-ckpt-freq", str(10**9), "--drop-rate", "0", "--dtype", dtype,
        "--device", bench["device"].type, "--no-progress"])
    config = {**MODELS[bench["model"]], "context_length": bench["context_length"],
              "drop_rate": 0.0}
    windows = Windows(TokenShards(shards_dir), config["context_length"], settings["val_fraction"])
    device = device_for_process(settings["device"], Cluster())
    torch.manual_seed(settings["seed"])
    model = GPTModel(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=0.1)
    return settings, config, windows, device, model, optimizer


def run_pretrain(shards_dir, work_dir, bench, dtype, tokenizer):
    settings, config, windows, device, model, optimizer = training_setup(
        shards_dir, work_dir, bench, dtype, f"pretrain-{dtype}")
    # The same outer autocast as for train_model_simple, so that both print their
    # sample under it (pretrain() itself applies autocast to its training steps).
    with autocast_for(device, dtype):
        _, tokens_per_s = pretrain(model, optimizer, windows, settings, Position(), Cluster(),
                                   device, tokenizer, {}, config)
    return tokens_per_s, model


def run_train_model_simple(shards_dir, work_dir, bench, dtype, tokenizer):
    """Chapter 5's loop on exactly the batches pretraining_simple.py's loop draws."""
    settings, config, windows, device, model, optimizer = training_setup(
        shards_dir, work_dir, bench, dtype, f"simple-{dtype}")
    batch_size, steps = settings["batch_size"], settings["max_steps"]
    order = windows.epoch_order(settings["seed"], 0).tolist()
    train_batches = [windows.batch(order[i * batch_size:(i + 1) * batch_size])
                     for i in range(steps)]
    val_batches = [windows.batch(range(windows.num_train, windows.num_train + batch_size))]
    synchronize(device)
    start = time.perf_counter()
    with autocast_for(device, dtype):
        train_model_simple(model, train_batches, val_batches, optimizer, device, num_epochs=1,
                           eval_freq=10**9, eval_iter=1, start_context="Every effort moves you",
                           tokenizer=tokenizer)
    synchronize(device)
    seconds = time.perf_counter() - start
    return steps * batch_size * config["context_length"] / seconds, model


def bench_training(shards_dir, work_dir, bench):
    """Part 2: both training loops in float32 and bfloat16; `bench` as parse_bench_args returns."""
    config = MODELS[bench["model"]]
    print(f"\nPart 2: training GPT ({bench['model']}: {config['n_layers']} layers, "
          f"{config['emb_dim']}-dim) with batches of {bench['batch_size']} x "
          f"{bench['context_length']} tokens, {bench['steps']} steps per run")
    cache_gpt2_tokenizer_files()
    tokenizer = tiktoken.get_encoding("gpt2")
    results, models = {}, {}
    for dtype in ("float32", "bfloat16"):
        for name, run in (("pretraining_simple.py", run_pretrain),
                          ("train_model_simple", run_train_model_simple)):
            results[name, dtype], models[name, dtype] = run(shards_dir, work_dir, bench, dtype,
                                                            tokenizer)
            print(f"  {name}, {dtype}: {results[name, dtype]:,.1f} tokens/s", flush=True)
    same = all(torch.equal(a, b) for a, b in zip(
        models["pretraining_simple.py", "float32"].state_dict().values(),
        models["train_model_simple", "float32"].state_dict().values(), strict=True))
    print(f"  float32 runs end with identical weights: {same}")
    print(f"  {'loop':<24}{'float32 tok/s':>15}{'bf16 tok/s':>13}{'bf16/fp32':>11}")
    for name in ("pretraining_simple.py", "train_model_simple"):
        fp32, bf16 = results[name, "float32"], results[name, "bfloat16"]
        print(f"  {name:<24}{fp32:>15,.0f}{bf16:>13,.0f}{bf16 / fp32:>11.2f}")
    for dtype in ("float32", "bfloat16"):
        ratio = results["pretraining_simple.py", dtype] / results["train_model_simple", dtype]
        print(f"  pretraining_simple.py / train_model_simple, {dtype}: {ratio:.2f}")


def parse_bench_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books-dir", default=None,
                        help="a folder of .txt books (None: make synthetic ones)")
    parser.add_argument("--num-books", type=positive_int, default=40,
                        help="synthetic books to make")
    parser.add_argument("--book-repeats", type=positive_int, default=5,
                        help="copies of the story in each synthetic book (about 20 KB each)")
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--context-length", type=positive_int, default=256)
    parser.add_argument("--batch-size", type=positive_int, default=2)
    parser.add_argument("--steps", type=positive_int, default=10,
                        help="optimizer steps per timed run")
    add_device_argument(parser)
    parser.add_argument("--skip-training", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    if args.books_dir is not None and not Path(args.books_dir).is_dir():
        parser.error(f"argument --books-dir: {args.books_dir} is not a folder")
    return vars(args)


def load_average():
    """The load average, where the system reports one (not on Windows)."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return f"load average {', '.join(f'{load:.1f}' for load in os.getloadavg())}"


def main(argv=None):
    bench = parse_bench_args(argv)
    print(f"torch {torch.__version__}, device: {bench['device']}, {torch.get_num_threads()} "
          f"threads, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {load_average()}")
    with tempfile.TemporaryDirectory() as temp:
        work_dir = Path(temp)
        books_dir = Path(bench["books_dir"]) if bench["books_dir"] else work_dir / "books"
        if not bench["books_dir"]:
            books_dir.mkdir()
            make_books(books_dir, bench["num_books"], bench["book_repeats"])
        shards_dir = bench_prepare(books_dir, work_dir)
        if not bench["skip_training"]:
            bench_training(shards_dir, work_dir, bench)


if __name__ == "__main__":
    main()
