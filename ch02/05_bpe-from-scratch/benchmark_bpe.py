"""Time the from-scratch BPE tokenizer against tiktoken, side by side in one run.

    python benchmark_bpe.py [--repeats 20] [--vocab-size 1000] [--text FILE]

Measures, on the-verdict.txt (or your `--text` file, which is only read):
- encoding with GPT-2's vocabulary: tiktoken vs `ByteLevelBPETokenizer`, ours
  both with an empty chunk cache (a fresh tokenizer) and with the cache
  filled by an earlier call; it also checks that the ids are equal;
- training a `--vocab-size` vocabulary with `ByteLevelBPETokenizer.train`.
Prints a Markdown table; every number in it is measured in this run. The
tokenizers run on the CPU only, so there is no `--device` flag.
"""

import argparse
import gc
import os
import platform
import time
from pathlib import Path

import tiktoken
import torch
from bpe_from_scratch import ByteLevelBPETokenizer
from downloads import cache_gpt2_tokenizer_files, download_file, gpt2_bpe_file_paths
from script_helpers import ScriptArgumentParser, existing_file, positive_int

# the-verdict.txt is downloaded here, beside the script (the notebook uses the
# same file), never onto a path the user named.
# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::SCRIPT_DIR
SCRIPT_DIR = Path(__file__).resolve().parent
# 256 byte tokens plus GPT-2's <|endoftext|>: the smallest vocabulary `train` accepts.
MIN_VOCAB_SIZE = 257

# Copied from ch02/01_main-chapter-code/ch02.ipynb::VERDICT_URL
VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
# Copied from ch02/01_main-chapter-code/ch02.ipynb::VERDICT_SHA256
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"


def vocab_size(text):
    """A --vocab-size value: room for the 256 bytes and the special token."""
    value = positive_int(text)
    if value < MIN_VOCAB_SIZE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_VOCAB_SIZE}, got {value}")
    return value


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=50,
                        help="timed calls per measurement; the fastest counts "
                             "(a quarter as many for training)")
    parser.add_argument("--vocab-size", type=vocab_size, default=1000,
                        help="vocabulary size for the training benchmark")
    parser.add_argument("--text", type=existing_file, default=None,
                        help="text file to use, only read (default: the-verdict.txt, "
                             "downloaded beside this script)")
    return vars(parser.parse_args(argv))


# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::seconds_for_call
def seconds_for_call(function):
    """(wall-clock seconds, CPU seconds) of one call of `function()`.

    Like `timeit`, the garbage collector is paused so that a collection
    triggered by earlier code is not billed to this call. CPU time counts
    only the time this process actually ran: on a busy shared machine the
    wall-clock time also contains waiting for other programs.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        function()
        return time.perf_counter() - wall_start, time.process_time() - cpu_start
    finally:
        if gc_was_enabled:
            gc.enable()


# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::fastest_seconds_interleaved
def fastest_seconds_interleaved(contenders, repeats):
    """Best (wall, CPU) seconds of each function in `contenders` (name -> function).

    The functions take turns, one call each per round, for `repeats` rounds:
    a busy moment on the machine then slows all of them alike, and the
    fastest call of each is the one least disturbed. The best wall-clock
    and the best CPU time are taken separately.
    """
    best = {name: (float("inf"), float("inf")) for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            wall, cpu = seconds_for_call(function)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::read_benchmark_text
def read_benchmark_text(text_file=None):
    """(name, text) to time: `text_file` (only read), else the course's story.

    The story is fetched with the download helper into this script's folder;
    a file the user named is never written to, even if it is called
    the-verdict.txt and holds something else.
    """
    if text_file is None:
        text_file = download_file(VERDICT_URL, SCRIPT_DIR / "the-verdict.txt",
                                  sha256=VERDICT_SHA256)
    return text_file.name, text_file.read_text(encoding="utf-8")


def encoding_times_vs_tiktoken(text, repeats):
    """Best (wall, CPU) seconds, by name, to encode `text` with tiktoken and ours."""
    cache_gpt2_tokenizer_files()
    reference = tiktoken.get_encoding("gpt2")
    paths = gpt2_bpe_file_paths()
    ours, cold = ByteLevelBPETokenizer(), ByteLevelBPETokenizer()
    # `cold` has its cache emptied before each call: it measures encoding
    # text whose chunks were never seen before.
    for tokenizer in (ours, cold):
        tokenizer.load_vocab_and_merges_from_openai(paths["encoder.json"], paths["vocab.bpe"])
    if ours.encode(text) != reference.encode(text):
        raise AssertionError("ByteLevelBPETokenizer and tiktoken disagree on this text")

    def encode_with_empty_cache():
        cold.clear_cache()
        cold.encode(text)

    return fastest_seconds_interleaved({
        "tiktoken (Rust; keeps no cache between calls)": lambda: reference.encode(text),
        "ByteLevelBPETokenizer, empty cache": encode_with_empty_cache,
        "ByteLevelBPETokenizer, cache filled by earlier calls": lambda: ours.encode(text),
    }, repeats)


def training_seconds(text, vocab_size, repeats):
    """Best (wall, CPU) seconds to train a fresh tokenizer with `vocab_size` tokens."""
    contender = {"train": lambda: ByteLevelBPETokenizer().train(text, vocab_size)}
    return fastest_seconds_interleaved(contender, repeats)["train"]


def main(settings):
    """Time encoding and training as `settings` (parse_args's dict) says; print the tables."""
    repeats, vocab_size = settings["repeats"], settings["vocab_size"]
    text_name, text = read_benchmark_text(settings["text"])
    encode_best = encoding_times_vs_tiktoken(text, repeats)
    train_runs = max(1, repeats // 4)
    train_best = training_seconds(text, vocab_size, train_runs)

    print(f"text: {text_name}, {len(text):,} characters "
          "(both tokenizers give identical ids)")
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"tiktoken {tiktoken.__version__}, {platform.machine()} {platform.system()}, "
          f"{os.cpu_count()} CPU cores")
    print()
    tiktoken_wall, tiktoken_cpu = next(iter(encode_best.values()))
    print(f"| encode with GPT-2's vocabulary (best of {repeats}) | wall clock | "
          "vs tiktoken | CPU time | vs tiktoken |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in encode_best.items():
        print(f"| {name} | {wall * 1e3:.2f} ms | {wall / tiktoken_wall:.1f}x | "
              f"{cpu * 1e3:.2f} ms | {cpu / tiktoken_cpu:.1f}x |")
    print()
    train_wall, train_cpu = train_best
    print(f"| training (best of {train_runs}) | wall clock | CPU time |")
    print("|---|---:|---:|")
    print(f"| ByteLevelBPETokenizer.train, vocab_size={vocab_size} | {train_wall:.2f} s | "
          f"{train_cpu:.2f} s |")


if __name__ == "__main__":
    main(parse_args())
