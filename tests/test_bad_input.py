"""Every script meets bad input with one line that names the argument.

One table holds every case: the script (relative to the repository), its
arguments, and the flag the error line must name. To cover another script,
append rows. Each case runs the script's `__main__` code in this process
(`run_script_in_process`: the same code `python script.py ...` runs, without
starting Python and importing torch again), in an empty working folder that
holds a user's files, and must:

- exit with status 2,
- print exactly one line to stderr, naming the argument, with no traceback,
- write or change nothing: not in the working folder (where the relative
  defaults of --output-dir and friends point), not beside the script.

The working folder holds `model.pth` (a user's trained model: `gpt_train.py
--epochs 0` must not replace it), `notes.txt` (not a checkpoint) and
`a-file`, a plain file: `a-file/out` can never be created, not even by root,
which makes it the unwritable output folder of every script that writes.
"""

import json

import pytest
from support.course_imports import REPO_ROOT
from support.helpers import run_script, run_script_in_process

DDP = "appendix-A/01_main-chapter-code/DDP-script.py"
LORA = "appendix-E/01_main-chapter-code/lora_benchmark.py"
CH06_IMDB = "ch06/03_bonus_imdb-classification"
TOKENIZERS = "ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py"
EMBEDDING = "ch02/03_bonus_embedding-vs-matmul/embedding_vs_matmul.py"
BPE = "ch02/05_bpe-from-scratch/benchmark_bpe.py"
ATTENTION = "ch03/02_bonus_efficient-multihead-attention/benchmark.py"
GPT = "ch04/01_main-chapter-code/gpt.py"
PERFORMANCE = "ch04/02_performance-analysis/performance.py"
KV_CACHE = "ch04/03_kv-cache/benchmark.py"
MATVEC = "ch04/03_kv-cache/matvec_layouts.py"
TRAIN = "ch05/01_main-chapter-code/gpt_train.py"
GENERATE = "ch05/01_main-chapter-code/gpt_generate.py"
BENCH_TRAIN = "ch05/01_main-chapter-code/bench_train.py"
PREPARE = "ch05/03_bonus_pretraining_on_gutenberg/prepare_dataset.py"
PRETRAIN = "ch05/03_bonus_pretraining_on_gutenberg/pretraining_simple.py"
BENCH_GUTENBERG = "ch05/03_bonus_pretraining_on_gutenberg/bench_gutenberg.py"
HPARAM = "ch05/05_bonus_hparam_tuning/hparam_search.py"
LLAMA = "ch05/07_gpt_to_llama/benchmark.py"
QWEN3 = "ch05/11_qwen3/benchmark.py"
LOADING = "ch05/08_memory_efficient_weight_loading/memory_efficient_loading.py"
CLASSIFY = "ch06/01_main-chapter-code/gpt_class_finetune.py"
CH06_EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
IMDB_PREPARE = f"{CH06_IMDB}/download_prepare_dataset.py"
IMDB_GPT = f"{CH06_IMDB}/train_gpt.py"
IMDB_LOGREG = f"{CH06_IMDB}/train_sklearn_logreg.py"
IMDB_BERT = f"{CH06_IMDB}/train_bert_hf.py"
IMDB_BERT_SPAM = f"{CH06_IMDB}/train_bert_hf_spam.py"
INSTRUCT = "ch07/01_main-chapter-code/gpt_instruction_finetuning.py"
EXERCISES = "ch07/01_main-chapter-code/exercise_experiments.py"
JUDGE = "ch07/01_main-chapter-code/ollama_evaluate.py"
NEAR_DUPLICATES = "ch07/02_dataset-utilities/find_near_duplicates.py"
ENV_CHECK = "setup/python_environment_check.py"
PKG_BATCHED = "pkg/benchmarks/batched_generation.py"
GEMMA3 = "ch05/12_gemma3/benchmark.py"
CH04_KV = ("ch04/04_gqa", "ch04/05_mla", "ch04/06_swa", "ch04/07_moe", "ch04/08_deltanet")
GQA_EST = "ch04/04_gqa/memory_estimator_gqa.py"
GQA_ESTIMATOR_REQUIRED = ["--emb_dim", "4096", "--n_heads", "32", "--n_layers", "32"]
SPEED = "ch05/10_llm-training-speed"
SPEED_ORIG, SPEED_OPT = f"{SPEED}/00_orig.py", f"{SPEED}/01_opt_single_gpu.py"
SPEED_DDP, SPEED_BENCH = f"{SPEED}/02_opt_multi_gpu_ddp.py", f"{SPEED}/bench_ladder.py"

UNWRITABLE = "a-file/out"

# Input files a new user might give a script, each wrong in one way (under inputs/).
_ENTRY = {"instruction": "Say hi.", "input": "", "output": "Hi."}
_GRID = {"peak_lr": [5e-4], "batch_size": [2], "drop_rate": [0.0], "weight_decay": [0.1],
         "warmup_steps": [0], "max_norm": [None], "min_lr": [1e-5]}
INPUT_FILES = {
    "dict/instruction-data.json": json.dumps(_ENTRY).encode(),
    "missing-keys/instruction-data.json": b'[{"instruction": "Say hi."}]',
    "latin1/instruction-data.json": '[{"instruction": "café"}]'.encode("latin-1"),
    "nested/instruction-data.json": b"[" * 100_000,
    "empty/instruction-data.json": b"",
    "few/instruction-data.json": json.dumps([_ENTRY] * 3).encode(),
    "grid.json": json.dumps(_GRID).encode(),
    "grid-inf.json": json.dumps({**_GRID, "peak_lr": [float("inf")]}).encode(),
    "grid-batch-0.json": json.dumps({**_GRID, "batch_size": [0]}).encode(),
    **{f"one-class/{split}.csv": b"text,label\ngood,1\nfine,1\n"
       for split in ("train", "validation", "test")},
    **{f"no-label/{split}.csv": b"text,stars\ngood,5\nbad,1\n"
       for split in ("train", "validation", "test")},
    **{f"tiny/{split}.csv": b"text,label\ngood film,1\nbad film,0\n"
       for split in ("train", "validation", "test")},
    "ch06-run/review_classifier.pth": b"a model trained yesterday",
    "gutenberg/index.json": b'{"tokenizer": "gpt2", "shards": [{"fi',  # cut short
}

# pretraining_simple.py's torchrun error handler wants a real stderr, which an
# in-process run replaces; it says so and carries on.
pytestmark = pytest.mark.filterwarnings("ignore:Unable to enable fault handler")

BAD_INPUT = [
    # (script, arguments, flag named in the error)
    (DDP, ["--num-procs", "0"], "--num-procs"),
    (DDP, ["--num-procs", "-2"], "--num-procs"),
    (DDP, ["--num_epochs", "x"], "--num-epochs"),  # the book's underscore spelling
    (DDP, ["--fail-rank", "5"], "--fail-rank"),
    (LORA, ["--steps", "0"], "--steps"),
    (LORA, ["--seq-len", "2000"], "--seq-len"),
    (LORA, ["--lora_rank", "0"], "--lora-rank"),
    (LORA, ["--lora-alpha", "-1"], "--lora-alpha"),
    (LORA, ["--device", "tpu"], "--device"),
    (TOKENIZERS, ["--repeats", "0"], "--repeats"),
    (TOKENIZERS, ["--text", "missing.txt"], "--text"),
    (EMBEDDING, ["--repeats", "0"], "--repeats"),
    (EMBEDDING, ["--vocab-size", "-5"], "--vocab-size"),
    (EMBEDDING, ["--num-tokens", "ten"], "--num-tokens"),
    (EMBEDDING, ["--device", "tpu"], "--device"),
    (BPE, ["--vocab-size", "100"], "--vocab-size"),
    (BPE, ["--repeats", "-1"], "--repeats"),
    (BPE, ["--text", "missing.txt"], "--text"),
    (ATTENTION, ["--batch_size", "0"], "--batch-size"),
    (ATTENTION, ["--warmup", "-1"], "--warmup"),
    (ATTENTION, ["--num-heads", "5"], "--num-heads"),
    (ATTENTION, ["--plot", "no-such-folder/plot.png"], "--plot"),
    (ATTENTION, ["--device", "gpu"], "--device"),
    (GPT, ["--prompt", ""], "--prompt"),
    (GPT, ["--max-new-tokens", "-1"], "--max-new-tokens"),
    (GPT, ["--max-new-tokens", "ten"], "--max-new-tokens"),
    (GPT, ["--seed", "1.5"], "--seed"),
    (GPT, ["--device", "tpu"], "--device"),
    (PERFORMANCE, ["--batch-size", "0"], "--batch-size"),
    (PERFORMANCE, ["--seq-len", "2048"], "--seq-len"),
    (PERFORMANCE, ["--repeats", "0"], "--repeats"),
    (KV_CACHE, ["--prompt", ""], "--prompt"),
    (KV_CACHE, ["--repeats", "0"], "--repeats"),
    (KV_CACHE, ["--repeats", "-2"], "--repeats"),
    (KV_CACHE, ["--max-new-tokens", "0"], "--max-new-tokens"),
    (KV_CACHE, ["--n-heads", "5"], "--n-heads"),
    (KV_CACHE, ["--device", "tpu"], "--device"),
    (MATVEC, ["--repeats", "0"], "--repeats"),
    (MATVEC, ["--memory_mb", "-1"], "--memory-mb"),
    (MATVEC, ["--device", "tpu"], "--device"),
    (TRAIN, ["--epochs", "0"], "--epochs"),  # would replace the user's model.pth
    (TRAIN, ["--epochs", "-3"], "--epochs"),
    (TRAIN, ["--epochs", "two"], "--epochs"),
    (TRAIN, ["--batch-size", "0"], "--batch-size"),
    (TRAIN, ["--lr", "-0.001"], "--lr"),
    (TRAIN, ["--lr", "nan"], "--lr"),
    (TRAIN, ["--weight-decay", "-1"], "--weight-decay"),
    (TRAIN, ["--device", "tpu"], "--device"),
    (TRAIN, ["--context-length", "2000"], "--context-length"),
    (TRAIN, ["--context-length", "0"], "--context-length"),
    (TRAIN, ["--eval-freq", "0"], "--eval-freq"),
    (TRAIN, ["--eval-iter", "0"], "--eval-iter"),
    (TRAIN, ["--start-context", ""], "--start-context"),
    (TRAIN, ["--text-file", "missing.txt"], "--text-file"),
    (TRAIN, ["--model-config", "1T"], "--model-config"),
    (TRAIN, ["--output-dir", UNWRITABLE], "--output-dir"),
    (GENERATE, ["--prompt", ""], "--prompt"),
    (GENERATE, ["--max-new-tokens", "-1"], "--max-new-tokens"),
    (GENERATE, ["--temperature", "-0.5"], "--temperature"),
    (GENERATE, ["--top-k", "-1"], "--top-k"),
    (GENERATE, ["--device", "tpu"], "--device"),
    (GENERATE, ["--model-size", "2B"], "--model-size"),
    (GENERATE, ["--context-length", "0"], "--context-length"),
    (GENERATE, ["--checkpoint", "missing.pth"], "--checkpoint"),
    (GENERATE, ["--checkpoint", "notes.txt"], "--checkpoint"),
    (BENCH_TRAIN, ["--epochs", "0"], "--epochs"),
    (BENCH_TRAIN, ["--repeats", "0"], "--repeats"),
    (BENCH_TRAIN, ["--device", "tpu"], "--device"),
    (PREPARE, ["--data-dir", "missing"], "--data-dir"),
    (PREPARE, ["--data_dir", "notes.txt"], "--data-dir"),
    (PREPARE, ["--max-size-mb", "0"], "--max-size-mb"),
    (PREPARE, ["--workers", "x"], "--workers"),
    (PREPARE, ["--output_dir", UNWRITABLE], "--output-dir"),
    (PRETRAIN, ["--n_epochs", "0"], "--n-epochs"),
    (PRETRAIN, ["--batch-size", "-4"], "--batch-size"),
    (PRETRAIN, ["--lr", "0"], "--lr"),
    (PRETRAIN, ["--val-fraction", "1.5"], "--val-fraction"),
    (PRETRAIN, ["--device", "tpu"], "--device"),
    (PRETRAIN, ["--data-dir", "missing"], "--data-dir"),
    (PRETRAIN, ["--output-dir", UNWRITABLE], "--output-dir"),
    (BENCH_GUTENBERG, ["--steps", "0"], "--steps"),
    (BENCH_GUTENBERG, ["--books-dir", "missing"], "--books-dir"),
    (BENCH_GUTENBERG, ["--device", "tpu"], "--device"),
    (HPARAM, ["--epochs", "0"], "--epochs"),
    (HPARAM, ["--max-trials", "-1"], "--max-trials"),
    (HPARAM, ["--grid", "missing.json"], "--grid"),
    (HPARAM, ["--grid", "notes.txt"], "--grid"),
    (HPARAM, ["--output", f"{UNWRITABLE}/results.csv"], "--output"),
    (HPARAM, ["--device", "tpu"], "--device"),
    (LLAMA, ["--max-new-tokens", "0"], "--max-new-tokens"),
    (LLAMA, ["--max_new_tokens", "x"], "--max-new-tokens"),
    (LLAMA, ["--repeats", "-1"], "--repeats"),
    (LLAMA, ["--model", "70B"], "--model"),
    (LLAMA, ["--device", "tpu"], "--device"),
    (LLAMA, ["--model", "tiny", "--prompt-length", "1000", "--max-new-tokens", "100"],
     "--max-new-tokens"),
    (QWEN3, ["--model", "7B"], "--model"),
    (QWEN3, ["--max-new-tokens", "0"], "--max-new-tokens"),
    (QWEN3, ["--model", "tiny", "--max_new_tokens", "1020"], "--max-new-tokens"),
    (QWEN3, ["--dtype", "int8"], "--dtype"),
    (QWEN3, ["--device", "tpu"], "--device"),
    (LOADING, ["--model", "gpt5"], "--model"),
    (LOADING, ["--folder", "a-file"], "--folder"),
    (LOADING, ["--folder", UNWRITABLE], "--folder"),
    (CLASSIFY, ["--model-size", "999M"], "--model-size"),
    (CLASSIFY, ["--epochs", "0"], "--epochs"),
    (CLASSIFY, ["--lr", "fast"], "--lr"),
    (CLASSIFY, ["--batch_size", "-1"], "--batch-size"),
    (CLASSIFY, ["--context-length", "5000"], "--context-length"),
    (CLASSIFY, ["--device", "tpu"], "--device"),
    (CLASSIFY, ["--output-dir", UNWRITABLE], "--output-dir"),
    (CLASSIFY, ["--output-dir", "a-file"], "--output-dir"),
    (CLASSIFY, ["--data-dir", UNWRITABLE], "--data-dir"),
    (CH06_EXPERIMENTS, ["--trainable-layers", "half"], "--trainable-layers"),
    (CH06_EXPERIMENTS, ["--lora_rank", "0"], "--lora-rank"),
    (CH06_EXPERIMENTS, ["--context-length", "2000"], "--context-length"),
    (CH06_EXPERIMENTS, ["--accumulation-steps", "0"], "--accumulation-steps"),
    (CH06_EXPERIMENTS, ["--results-csv", "no-such-folder/results.csv"], "--results-csv"),
    (CH06_EXPERIMENTS, ["--device", "tpu"], "--device"),
    (IMDB_PREPARE, ["--train-size", "3"], "--train-size"),
    (IMDB_PREPARE, ["--test_size", "60000"], "--train-size"),
    (IMDB_GPT, ["--data-dir", "missing"], "--data-dir"),
    (IMDB_GPT, ["--num_epochs", "0"], "--num-epochs"),
    (IMDB_LOGREG, ["--data-dir", "missing"], "--data-dir"),
    (IMDB_LOGREG, ["--ngram-max", "0"], "--ngram-max"),
    (IMDB_BERT, ["--use_attention_mask", "maybe"], "--use-attention-mask"),
    (IMDB_BERT, ["--trainable-layers", "lora"], "--trainable-layers"),
    (IMDB_BERT_SPAM, ["--data-dir", UNWRITABLE], "--data-dir"),
    (IMDB_BERT_SPAM, ["--learning_rate", "0"], "--learning-rate"),
    (CH06_EXPERIMENTS, ["--model_size", "gpt2-huge (9B)"], "--model-size"),
    (IMDB_GPT, ["--trainable_layers", "lora_merged"], "--trainable-layers"),
    (INSTRUCT, ["--epochs", "0"], "--epochs"),
    (INSTRUCT, ["--lr", "-1"], "--lr"),
    (INSTRUCT, ["--batch-size", "x"], "--batch-size"),
    (INSTRUCT, ["--model-size", "7B"], "--model-size"),
    (INSTRUCT, ["--max_test_entries", "0"], "--max-test-entries"),
    (INSTRUCT, ["--device", "tpu"], "--device"),
    (INSTRUCT, ["--output-dir", UNWRITABLE], "--output-dir"),
    (EXERCISES, ["--exercise_solution", "dpo"], "--exercise-solution"),
    (EXERCISES, ["--exercise-solution", "lora", "--lora-rank", "0"], "--lora-rank"),
    (JUDGE, ["--file", "missing.json"], "--file"),
    (JUDGE, ["--file_path", "missing.json"], "--file"),
    (JUDGE, ["--timeout", "0"], "--timeout"),
    (JUDGE, ["--retries", "-1"], "--retries"),
    (JUDGE, [], "--file"),  # no instruction-data-with-response.json in the user's folder
    (JUDGE, ["--file", "notes.txt", "--download-book-responses"], "--download-book-responses"),
    (NEAR_DUPLICATES, [], "--json-file"),
    (NEAR_DUPLICATES, ["--json_file", "missing.json"], "--json-file"),
    (NEAR_DUPLICATES, ["--json-file", "notes.txt", "--threshold", "0"], "--threshold"),
    (NEAR_DUPLICATES, ["--json-file", "notes.txt", "--threshold", "1.5"], "--threshold"),
    (NEAR_DUPLICATES, ["--json-file", "notes.txt"], "--json-file"),  # not JSON
    (NEAR_DUPLICATES, ["--json-file", "notes.txt", "--remove-duplicates"], "--output"),
    (NEAR_DUPLICATES, ["--json-file", "notes.txt", "--remove_duplicates", "--json_output_file",
                       "no-such-folder/out.json"], "--output"),
    (ENV_CHECK, ["missing-requirements.txt"], "requirements"),
    (PKG_BATCHED, ["--prompts", "0"], "--prompts"),
    (PKG_BATCHED, ["--max-new-tokens", "1000"], "--max-new-tokens"),
    (PKG_BATCHED, ["--threads", "two"], "--threads"),
    (GEMMA3, ["--max-new-tokens", "0"], "--max-new-tokens"),
    (GEMMA3, ["--max_new_tokens", "x"], "--max-new-tokens"),
    (GEMMA3, ["--repeats", "-1"], "--repeats"),
    (GEMMA3, ["--model", "1b"], "--model"),
    (GEMMA3, ["--dtype", "float16"], "--dtype"),
    (GEMMA3, ["--model", "tiny", "--prompt-length", "1000", "--max-new-tokens", "100"],
     "--max-new-tokens"),
    (GEMMA3, ["--device", "tpu"], "--device"),
    # Issue 35: finite numbers, input files' shape, existing outputs, 0-step runs
    (PRETRAIN, ["--lr", "inf"], "--lr"),
    (PRETRAIN, ["--weight-decay", "nan"], "--weight-decay"),
    (PRETRAIN, ["--weight_decay", "-1"], "--weight-decay"),
    (PRETRAIN, ["--dist-timeout", "inf"], "--dist-timeout"),
    (PRETRAIN, ["--debug", "maybe"], "--debug"),
    (PRETRAIN, ["--data-dir", "a-file"], "--data-dir"),
    (PRETRAIN, ["--data-dir", "inputs/gutenberg"], "--data-dir"),  # damaged index.json
    (PRETRAIN, ["--data-dir", "inputs/tiny"], "--data-dir"),  # neither shards nor .txt
    (PREPARE, ["--max-size-mb", "inf"], "--max-size-mb"),
    (PREPARE, ["--max_size_mb", "nan"], "--max-size-mb"),
    (HPARAM, ["--grid", "inputs/grid-inf.json"], "--grid"),
    (HPARAM, ["--grid", "inputs/grid-batch-0.json"], "--grid"),
    (HPARAM, ["--grid", "inputs/grid.json", "--output", "inputs/grid.json", "--resume"],
     "--output"),
    (CLASSIFY, ["--lr", "inf"], "--lr"),
    (CLASSIFY, ["--weight-decay", "nan"], "--weight-decay"),
    (CLASSIFY, ["--weight_decay", "-0.1"], "--weight-decay"),
    (CLASSIFY, ["--data-dir", "a-file"], "--data-dir"),
    (CLASSIFY, ["--output-dir", "inputs/ch06-run"], "--output-dir"),  # no --overwrite
    (CH06_EXPERIMENTS, ["--weight-decay", "inf"], "--weight-decay"),
    (CH06_EXPERIMENTS, ["--learning-rate", "nan"], "--learning-rate"),
    (IMDB_GPT, ["--weight_decay", "-1"], "--weight-decay"),
    (IMDB_GPT, ["--learning_rate", "inf"], "--learning-rate"),
    (IMDB_LOGREG, ["--c", "inf"], "--c"),
    (IMDB_LOGREG, ["--data-dir", "inputs/one-class"], "--data-dir"),
    (IMDB_LOGREG, ["--data-dir", "inputs/no-label"], "--data-dir"),
    (IMDB_LOGREG, ["--data-dir", "inputs/tiny", "--min-df", "5"], "--min-df"),
    (INSTRUCT, ["--lr", "inf"], "--lr"),
    (INSTRUCT, ["--weight-decay", "nan"], "--weight-decay"),
    (INSTRUCT, ["--data-dir", "a-file"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/dict"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/missing-keys"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/latin1"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/nested"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/empty"], "--data-dir"),
    (INSTRUCT, ["--data-dir", "inputs/few"], "--data-dir"),
    (INSTRUCT, ["--data-dir", UNWRITABLE], "--data-dir"),  # the data cannot be fetched there
    (HPARAM, ["--data-dir", "a-file"], "--data-dir"),
    (HPARAM, ["--data-dir", UNWRITABLE], "--data-dir"),
    # ch04 bonus folders 04-08: the shared MHA baseline (one copy per folder), the variants,
    # the estimators and plots.
    *[(f"{folder}/gpt_with_kv_mha.py", ["--n_heads", "5"], "--n-heads") for folder in CH04_KV],
    ("ch04/04_gqa/gpt_with_kv_mha.py", ["--max_new_tokens", "-1"], "--max-new-tokens"),
    ("ch04/04_gqa/gpt_with_kv_mha.py", ["--dtype", "int4"], "--dtype"),
    ("ch04/04_gqa/gpt_with_kv_gqa.py", ["--n_kv_groups", "5"], "--n-kv-groups"),
    ("ch04/04_gqa/gpt_with_kv_gqa.py", ["--n_kv_groups", "0"], "--n-kv-groups"),
    ("ch04/04_gqa/gpt_with_kv_gqa.py", ["--emb_dim", "100"], "--n-heads"),
    (GQA_EST, [*GQA_ESTIMATOR_REQUIRED, "--n_kv_groups", "5"], "--n-kv-groups"),
    (GQA_EST, ["--context_length", "-1"], "--context-length"),
    ("ch04/04_gqa/plot_memory_estimates_gqa.py", ["--output", "no-such-folder/kv.pdf"],
     "--output"),
    ("ch04/05_mla/gpt_with_kv_mla.py", ["--latent_dim", "0"], "--latent-dim"),
    ("ch04/05_mla/memory_estimator_mla.py", ["--latent_dim", "-4"], "--latent-dim"),
    ("ch04/05_mla/memory_estimator_mla.py",
     [*GQA_ESTIMATOR_REQUIRED, "--latent_dim", "8", "--n_kv_groups", "5"], "--n-kv-groups"),
    ("ch04/05_mla/plot_memory_estimates_mla.py", ["--output", UNWRITABLE], "--output"),
    ("ch04/06_swa/gpt_with_kv_swa.py", ["--sliding_window_size", "0"], "--sliding-window-size"),
    ("ch04/06_swa/gpt_with_kv_swa.py", ["--sliding_window_stride", "x"],
     "--sliding-window-stride"),
    ("ch04/06_swa/memory_estimator_swa.py", ["--sliding_window_size", "0"],
     "--sliding-window-size"),
    ("ch04/06_swa/memory_estimator_swa.py", ["--swa_ratio", "0:0"], "--swa-ratio"),
    ("ch04/06_swa/memory_estimator_swa.py", ["--batch_size", "-1"], "--batch-size"),
    ("ch04/06_swa/memory_estimator_swa.py",
     [*GQA_ESTIMATOR_REQUIRED, "--sliding_window_size", "4", "--n_kv_groups", "5"],
     "--n-kv-groups"),
    ("ch04/06_swa/plot_memory_estimates_swa.py",
     ["--emb_dim", "96", "--n_heads", "6", "--n_layers", "4", "--sliding_window_size", "8"],
     "--n-heads"),
    ("ch04/06_swa/plot_memory_estimates_swa.py", ["--sliding_window_size", "0"],
     "--sliding-window-size"),
    ("ch04/07_moe/gpt_with_kv_ffn.py", ["--hidden_dim", "0"], "--hidden-dim"),
    ("ch04/07_moe/gpt_with_kv_moe.py", ["--num_experts", "4", "--num_experts_per_tok", "5"],
     "--num-experts-per-tok"),
    ("ch04/07_moe/gpt_with_kv_moe.py", ["--num_experts", "-1"], "--num-experts"),
    ("ch04/07_moe/memory_estimator_moe.py",
     ["--emb_dim", "64", "--hidden_dim", "128", "--num_experts", "8", "--top_k", "9"], "--top-k"),
    ("ch04/07_moe/memory_estimator_moe.py", ["--emb_dim", "-1"], "--emb-dim"),
    ("ch04/07_moe/plot_memory_estimates_moe.py",
     ["--emb_dim", "64", "--hidden_dim", "128", "--top_k", "600"], "--top-k"),
    ("ch04/07_moe/plot_memory_estimates_moe.py", ["--save", "no-such-folder/moe.pdf"], "--save"),
    ("ch04/08_deltanet/gpt_with_kv_deltanet.py", ["--full_attention_interval", "0"],
     "--full-attention-interval"),
    ("ch04/08_deltanet/plot_memory_estimates_gated_deltanet.py", ["--n_heads", "5"], "--n-heads"),
    ("ch04/08_deltanet/plot_memory_estimates_gated_deltanet.py", ["--max_ctx", "100"],
     "--max-ctx"),
    ("ch04/08_deltanet/compare_kv_cache.py", ["--n_kv_groups", "3"], "--n-kv-groups"),
    ("ch04/08_deltanet/compare_kv_cache.py", ["--new_tokens", "5000"], "--new-tokens"),
    ("ch04/08_deltanet/compare_kv_cache.py", ["--n_heads", "5"], "--n-heads"),
    ("ch04/08_deltanet/compare_kv_cache.py", ["--context_length", "0"], "--context-length"),
    (SPEED_ORIG, ["--batch_size", "0"], "--batch-size"),
    (SPEED_ORIG, ["--model", "tiny", "--context-length", "64"], "--context-length"),
    # notes.txt is far too short for one batch: found before any training
    (SPEED_ORIG, ["--model", "tiny", "--data-dir", ".", "--device", "cpu"], "--batch-size"),
    (SPEED_OPT, ["--steps", "11"], "--steps"),
    (SPEED_OPT, ["--steps", "1,x"], "--steps"),
    (SPEED_OPT, ["--steps", "2", "--device", "cpu"], "--steps"),  # TF32: no tensor cores
    (SPEED_OPT, ["--steps", "4", "--device", "cpu"], "--steps"),  # pinned memory: no GPU
    (SPEED_OPT, ["--data-dir", "missing"], "--data-dir"),
    (SPEED_OPT, ["--data-dir", "a-file"], "--data-dir"),
    (SPEED_OPT, ["--loss-log", f"{UNWRITABLE}/log.json"], "--loss-log"),
    (SPEED_OPT, ["--device", "tpu"], "--device"),
    (SPEED_DDP, ["--steps", "0"], "--steps"),
    (SPEED_DDP, ["--drop-rate", "1.5"], "--drop-rate"),
    (SPEED_DDP, ["--max_steps", "0"], "--max-steps"),
    (SPEED_BENCH, ["--rounds", "0"], "--rounds"),
    (SPEED_BENCH, ["--threads", "0"], "--threads"),
    (SPEED_BENCH, ["--model", "tiny", "--context-length", "64"], "--context-length"),
]

def folder_state(folder):
    """Every file under `folder` with its size and modification time (caches aside)."""
    return {path.relative_to(folder): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


@pytest.fixture
def user_folder(tmp_path):
    """An otherwise empty working folder with a user's files in it."""
    (tmp_path / "model.pth").write_bytes(b"the user's trained model")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "a-file").write_text("a plain file: no folder can be made below it\n")
    for name, content in INPUT_FILES.items():  # bad input files, under inputs/
        path = tmp_path / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return tmp_path


@pytest.mark.parametrize(("script", "args", "flag"), BAD_INPUT,
                         ids=[f"{s.split('/')[-1]} {' '.join(a) or '(none)'}"
                              for s, a, _ in BAD_INPUT])
def test_bad_input_gives_one_line_naming_the_argument(script, args, flag, user_folder):
    script_folder = (REPO_ROOT / script).parent
    before = folder_state(script_folder), folder_state(user_folder)

    result = run_script_in_process(script, args, cwd=user_folder)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0] and "error" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert (folder_state(script_folder), folder_state(user_folder)) == before


def test_every_script_has_rows():
    course_files = [path for pattern in ("ch*/*/*.py", "appendix-*/*/*.py", "setup/*.py")
                    for path in REPO_ROOT.glob(pattern)]
    scripts = {path.relative_to(REPO_ROOT).as_posix() for path in course_files
               if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")}
    assert scripts - {script for script, _, _ in BAD_INPUT} == set()


def test_bad_input_from_the_shell_leaves_a_trained_model_alone(user_folder):
    """The same as a reader runs it: a real process, its exit status and stderr."""
    result = run_script(TRAIN, "--epochs", "0", "--output-dir", ".", cwd=user_folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--epochs" in lines[0], result.stderr
    assert (user_folder / "model.pth").read_bytes() == b"the user's trained model"
