"""Every script meets bad input with one line that names the argument.

One row per case: the script (relative to the repository), its arguments, and
the flag the error line must name. To cover another script, append rows.
Each case must exit with status 2, print exactly one line to stderr, show no
traceback, and write nothing: not in the folder it runs from, not beside the
script.
"""

import pytest
from course_imports import REPO_ROOT
from helpers import run_script_in_process

EMBEDDING = "ch02/03_bonus_embedding-vs-matmul/embedding_vs_matmul.py"
TOKENIZERS = "ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py"
BPE = "ch02/05_bpe-from-scratch/benchmark_bpe.py"
ATTENTION = "ch03/02_bonus_efficient-multihead-attention/benchmark.py"
PERFORMANCE = "ch04/02_performance-analysis/performance.py"
DDP = "appendix-A/01_main-chapter-code/DDP-script.py"

BAD_INPUT = [
    # (script, arguments, flag named in the error)
    (EMBEDDING, ["--repeats", "0"], "--repeats"),
    (EMBEDDING, ["--vocab-size", "-5"], "--vocab-size"),
    (EMBEDDING, ["--num-tokens", "ten"], "--num-tokens"),
    (EMBEDDING, ["--device", "tpu"], "--device"),
    (TOKENIZERS, ["--repeats", "0"], "--repeats"),
    (TOKENIZERS, ["--text", "missing.txt"], "--text"),
    (BPE, ["--vocab-size", "100"], "--vocab-size"),
    (BPE, ["--repeats", "-1"], "--repeats"),
    (BPE, ["--text", "missing.txt"], "--text"),
    (ATTENTION, ["--batch_size", "0"], "--batch-size"),  # the underscore alias
    (ATTENTION, ["--warmup", "-1"], "--warmup"),
    (ATTENTION, ["--num-heads", "5"], "--num-heads"),
    (ATTENTION, ["--plot", "no-such-folder/plot.png"], "--plot"),
    (ATTENTION, ["--device", "gpu"], "--device"),
    (PERFORMANCE, ["--batch-size", "0"], "--batch-size"),
    (PERFORMANCE, ["--seq-len", "2048"], "--seq-len"),
    (PERFORMANCE, ["--repeats", "0"], "--repeats"),
    (DDP, ["--num-procs", "0"], "--num-procs"),
    (DDP, ["--num-procs", "-2"], "--num-procs"),
    (DDP, ["--num_epochs", "x"], "--num-epochs"),
    (DDP, ["--fail-rank", "5"], "--fail-rank"),
]

# Chapter 7 bonus: near-duplicate search (kept in its own block)
NEAR_DUPLICATES = "ch07/02_dataset-utilities/find_near_duplicates.py"
BAD_INPUT += [
    (NEAR_DUPLICATES, [], "--json-file"),
    (NEAR_DUPLICATES, ["--json_file", "missing.json"], "--json-file"),
    (NEAR_DUPLICATES, ["--json-file", __file__, "--threshold", "0"], "--threshold"),
    (NEAR_DUPLICATES, ["--json-file", __file__, "--threshold", "1.5"], "--threshold"),
    (NEAR_DUPLICATES, ["--json-file", __file__], "--json-file"),  # not JSON
    (NEAR_DUPLICATES, ["--json-file", __file__, "--remove-duplicates"], "--output"),
    (NEAR_DUPLICATES, ["--json-file", __file__, "--remove_duplicates", "--json_output_file",
                       "no-such-folder/out.json"], "--output"),
]

# Chapter 6 bonus folders: additional experiments, IMDB (kept in their own block)
CH06_EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
CH06_IMDB = "ch06/03_bonus_imdb-classification"
BAD_INPUT += [
    (CH06_EXPERIMENTS, ["--trainable-layers", "half"], "--trainable-layers"),
    (CH06_EXPERIMENTS, ["--lora_rank", "0"], "--lora-rank"),
    (CH06_EXPERIMENTS, ["--context-length", "2000"], "--context-length"),
    (CH06_EXPERIMENTS, ["--accumulation-steps", "0"], "--accumulation-steps"),
    (CH06_EXPERIMENTS, ["--results-csv", "no-such-folder/results.csv"], "--results-csv"),
    (CH06_EXPERIMENTS, ["--device", "tpu"], "--device"),
    (f"{CH06_IMDB}/download_prepare_dataset.py", ["--train-size", "3"], "--train-size"),
    (f"{CH06_IMDB}/download_prepare_dataset.py", ["--test_size", "60000"], "--train-size"),
    (f"{CH06_IMDB}/train_gpt.py", ["--data-dir", "missing"], "--data-dir"),
    (f"{CH06_IMDB}/train_gpt.py", ["--num_epochs", "0"], "--num-epochs"),
    (f"{CH06_IMDB}/train_sklearn_logreg.py", ["--data-dir", "missing"], "--data-dir"),
    (f"{CH06_IMDB}/train_sklearn_logreg.py", ["--ngram-max", "0"], "--ngram-max"),
    (f"{CH06_IMDB}/train_bert_hf.py", ["--use_attention_mask", "maybe"],
     "--use-attention-mask"),
    (f"{CH06_IMDB}/train_bert_hf.py", ["--trainable-layers", "lora"], "--trainable-layers"),
]


def folder_state(folder):
    """Names and modification times of the files in `folder` (caches aside)."""
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()
            if path.name != "__pycache__"}


@pytest.mark.parametrize(("script", "args", "flag"), BAD_INPUT,
                         ids=[f"{s.split('/')[-1]} {' '.join(a)}" for s, a, _ in BAD_INPUT])
def test_bad_input_gives_one_line_naming_the_argument(script, args, flag, tmp_path):
    script_folder = (REPO_ROOT / script).parent
    before = folder_state(script_folder)

    result = run_script_in_process(script, args, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []
    assert folder_state(script_folder) == before
