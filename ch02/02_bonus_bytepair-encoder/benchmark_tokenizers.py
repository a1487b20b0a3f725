"""Compare GPT-2 tokenizers: same ids? how fast?

    python benchmark_tokenizers.py [--repeats 30] [--text FILE]

Builds every GPT-2 tokenizer from the same local `encoder.json`/`vocab.bpe`
(nothing is downloaded from a model hub):
- tiktoken (OpenAI's Rust implementation),
- `GPT2OriginalBPE` (GPT-2's original algorithm, in Python, in this folder),
- Hugging Face `transformers`' GPT2Tokenizer and GPT2TokenizerFast.
It checks that they produce identical ids on several texts, then times how
long each takes to encode the-verdict.txt (or your `--text` file, which is
only read). Prints Markdown tables; every number in them is measured in this
run. The tokenizers run on the CPU only, so there is no `--device` flag.
"""

import gc
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import tiktoken
import torch
import transformers
from downloads import cache_gpt2_tokenizer_files, download_file, gpt2_bpe_file_paths
from gpt2_original_bpe import GPT2OriginalBPE
from script_helpers import ScriptArgumentParser, existing_file, positive_int

# the-verdict.txt is downloaded here, beside the script (the notebook uses the
# same file), never onto a path the user named.
SCRIPT_DIR = Path(__file__).resolve().parent

# Copied from ch02/01_main-chapter-code/ch02.ipynb::VERDICT_URL
VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
# Copied from ch02/01_main-chapter-code/ch02.ipynb::VERDICT_SHA256
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"

# Short texts with different difficulties: unknown words, digits, runs of
# spaces and newlines, contractions, non-English letters, emoji, code.
SAMPLE_TEXTS = [
    "Hello, do you like tea? In the sunlit terraces of someunknownPlace.",
    "Akwirw ier",
    "It's 3:45pm and we'll need 1,234,567 tokens -- or won't we?",
    "    indented code:\n\tdef f(x):\n\t\treturn x ** 2  # squared\n\n\n",
    "Größe, naïve café, Ærøskøbing; Привет, мир! 你好，世界。 こんにちは",
    "emoji 🙂🚀 and symbols ©®™ → ∑ ∞ ≠",
]


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=30,
                        help="timed calls per tokenizer; the fastest counts")
    parser.add_argument("--text", type=existing_file, default=None,
                        help="text file to time, only read (default: the-verdict.txt, "
                             "downloaded beside this script)")
    return vars(parser.parse_args(argv))


def load_hf_gpt2_tokenizers(encoder_json_path, vocab_bpe_path):
    """Hugging Face's GPT-2 tokenizer classes, built from OpenAI's two files.

    `from_pretrained` also accepts a local folder; Hugging Face names the
    same two files `vocab.json` (= encoder.json) and `merges.txt`
    (= vocab.bpe). Copies go into a temporary folder, so no model hub is
    contacted. Since transformers 5, GPT2Tokenizer and GPT2TokenizerFast are
    one class (Rust-backed); then only one entry is returned.
    """
    from transformers import GPT2Tokenizer, GPT2TokenizerFast

    classes = {"GPT2Tokenizer": GPT2Tokenizer, "GPT2TokenizerFast": GPT2TokenizerFast}
    if GPT2Tokenizer is GPT2TokenizerFast:
        classes = {"GPT2Tokenizer (= GPT2TokenizerFast)": GPT2Tokenizer}
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(encoder_json_path, Path(folder) / "vocab.json")
        shutil.copyfile(vocab_bpe_path, Path(folder) / "merges.txt")
        return {name: cls.from_pretrained(folder) for name, cls in classes.items()}


def load_all_encoders():
    """name -> function(text) -> ids, for every GPT-2 tokenizer compared here."""
    cache_gpt2_tokenizer_files()
    paths = gpt2_bpe_file_paths()
    reference = tiktoken.get_encoding("gpt2")
    original = GPT2OriginalBPE.from_files(paths["encoder.json"], paths["vocab.bpe"])
    encoders = {
        "tiktoken": reference.encode,
        "GPT2OriginalBPE (this folder)": original.encode,
    }
    hf_tokenizers = load_hf_gpt2_tokenizers(paths["encoder.json"], paths["vocab.bpe"])
    for name, tokenizer in hf_tokenizers.items():
        encoders[f"transformers {name}"] = tokenizer.encode
    return encoders


def check_identical_ids(encoders, texts):
    """Raise if any tokenizer's ids differ from the first one's on any text."""
    (reference_name, reference), *others = encoders.items()
    for text in texts:
        expected = reference(text)
        for name, encode in others:
            if encode(text) != expected:
                raise AssertionError(f"{name} and {reference_name} differ on {text[:40]!r}")


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


def encoding_times(encoders, text, repeats):
    """Best (wall, CPU) seconds per tokenizer, plus our Python one with an empty cache."""
    paths = gpt2_bpe_file_paths()
    # A second GPT2OriginalBPE whose cache is emptied before every call shows
    # the cost of text whose chunks it has never seen.
    cold = GPT2OriginalBPE.from_files(paths["encoder.json"], paths["vocab.bpe"])

    def encode_with_empty_cache():
        cold.cache.clear()
        cold.encode(text)

    contenders = {name: (lambda encode=encode: encode(text)) for name, encode in encoders.items()}
    contenders["GPT2OriginalBPE, cache emptied before each call"] = encode_with_empty_cache
    return fastest_seconds_interleaved(contenders, repeats)


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


def main(settings):
    """Check that all tokenizers agree, then time them as `settings` (parse_args's dict) says."""
    repeats = settings["repeats"]
    text_name, text = read_benchmark_text(settings["text"])
    encoders = load_all_encoders()
    check_identical_ids(encoders, [text, *SAMPLE_TEXTS])
    num_tokens = len(encoders["tiktoken"](text))
    print(f"identical ids from all {len(encoders)} tokenizers on {text_name} "
          f"({num_tokens:,} tokens) and {len(SAMPLE_TEXTS)} sample texts")
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"tiktoken {tiktoken.__version__}, transformers {transformers.__version__}, "
          f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores")
    print()

    times = encoding_times(encoders, text, repeats)
    tiktoken_wall, tiktoken_cpu = times["tiktoken"]
    print(f"| encode {text_name} (best of {repeats}) | wall clock | vs tiktoken | "
          "CPU time | vs tiktoken |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in sorted(times.items(), key=lambda item: item[1][1]):
        print(f"| {name} | {wall * 1e3:.2f} ms | {wall / tiktoken_wall:.1f}x | "
              f"{cpu * 1e3:.2f} ms | {cpu / tiktoken_cpu:.1f}x |")


if __name__ == "__main__":
    main(parse_args())
