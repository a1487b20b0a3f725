"""What the two Qwen3 chat apps share: settings, loading the model, streaming an answer.

The model code is the folder above's (qwen3.py, qwen3_kvcache.py: the
notebooks' code); this module adds the apps' settings and the book
repository's helper names (`build_repo_and_local`, `get_device`,
`get_model_and_tokenizer`, `trim_input_tensor`).

Settings (environment variables, read when an app starts):

    QWEN3_MODEL           size: 0.6B (default), 1.7B, 4B, 8B, 14B, 32B or 30B-A3B
    QWEN3_REASONING       1 (default): Qwen/Qwen3-<size>, thinking before it answers;
                          0: Qwen/Qwen3-<size>-Base, which continues text
    QWEN3_DEVICE          auto (default: CUDA, then Apple's MPS, else the CPU), cuda, mps, cpu
    QWEN3_DTYPE           bfloat16 (default, as Qwen's weights) or float32 (for CPUs that
                          compute bfloat16 slowly; twice the memory)
    QWEN3_MAX_NEW_TOKENS  the longest answer, in tokens (default 38912, as Qwen recommends
                          for reasoning)
    QWEN3_LOCAL_DIR       a folder with the repository's files, instead of the
                          Hugging Face cache (default: the cache)
"""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # qwen3.py, qwen3_kvcache.py
from qwen3_kvcache import (  # noqa: E402
    Qwen3Model,
    Qwen3Tokenizer,
    download_from_huggingface_from_snapshots,
    generate_text_basic_stream,
    get_qwen_config,
    load_weights_into_qwen,
    qwen3_config_from_hf,
)

MODEL = os.environ.get("QWEN3_MODEL", "0.6B")
REASONING = os.environ.get("QWEN3_REASONING", "1") != "0"
DEVICE = os.environ.get("QWEN3_DEVICE", "auto")
DTYPE = os.environ.get("QWEN3_DTYPE", "bfloat16")
MAX_NEW_TOKENS = os.environ.get("QWEN3_MAX_NEW_TOKENS", "38912")
# Copied from ch05/07_gpt_to_llama/benchmark.py::DTYPES
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
LOCAL_DIR = os.environ.get("QWEN3_LOCAL_DIR") or None


def build_repo_and_local(model_name, reasoning, local_dir_arg):
    """(hub repository, local folder or None) for a model size."""
    get_qwen_config(model_name)  # an unknown size stops here, naming the sizes
    repo_id = f"Qwen/Qwen3-{model_name}" + ("" if reasoning else "-Base")
    return repo_id, local_dir_arg


def get_device(name):
    if name == "auto":
        name = ("cuda" if torch.cuda.is_available()
                else "mps" if torch.backends.mps.is_available() else "cpu")
    return torch.device(name)


def get_model_and_tokenizer(qwen3_config, repo_id, local_dir, device, use_reasoning,
                            dtype=torch.bfloat16):
    """The KV-cache Qwen3Model with the repository's weights, and its chat tokenizer.

    `qwen3_config` None reads the configuration from the repository's
    config.json (so fine-tuned and smaller variants load too), in `dtype`.
    """
    weights = download_from_huggingface_from_snapshots(repo_id, local_dir)
    if qwen3_config is None:
        from huggingface_hub import hf_hub_download

        config_file = hf_hub_download(repo_id=repo_id, filename="config.json",
                                      local_dir=local_dir)
        qwen3_config = qwen3_config_from_hf(json.loads(Path(config_file).read_text()), dtype)
    with torch.device("meta"):  # no memory for random weights that are replaced anyway
        model = Qwen3Model(qwen3_config)
    model.to_empty(device=device)
    model.cos, model.sin = recompute_rope(model, qwen3_config, device)
    load_weights_into_qwen(model, qwen3_config, weights)
    del weights
    tokenizer = Qwen3Tokenizer(tokenizer_file_path=tokenizer_file(repo_id, local_dir),
                               repo_id=repo_id, apply_chat_template=use_reasoning,
                               add_generation_prompt=use_reasoning, add_thinking=use_reasoning)
    return model.eval(), tokenizer


def recompute_rope(model, cfg, device):
    """The RoPE tables, which `to_empty` left uninitialised (they are buffers, not weights)."""
    from qwen3 import compute_rope_params

    head_dim = cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"]
    cos, sin = compute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"])
    return cos.to(device), sin.to(device)


def tokenizer_file(repo_id, local_dir):
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename="tokenizer.json", local_dir=local_dir)


def trim_input_tensor(input_ids_tensor, context_len, max_new_tokens):
    """Keep the last tokens of the prompt, leaving room for `max_new_tokens` new ones."""
    if max_new_tokens >= context_len:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) must be smaller than the "
                         f"context length ({context_len})")
    keep = max(1, context_len - max_new_tokens)
    return input_ids_tensor[:, -keep:]


def max_new_tokens():
    if not MAX_NEW_TOKENS.isdigit() or int(MAX_NEW_TOKENS) < 1:
        raise ValueError(f"QWEN3_MAX_NEW_TOKENS must be a positive whole number, "
                         f"not {MAX_NEW_TOKENS!r}")
    return int(MAX_NEW_TOKENS)


def load_chat_model():
    """The model and tokenizer the settings above describe, on their device.

    A bad setting raises ValueError with one line naming it (the apps show it in the page).
    """
    if DTYPE not in DTYPES:
        raise ValueError(f"QWEN3_DTYPE must be one of {', '.join(DTYPES)}, not {DTYPE!r}")
    if DEVICE not in ("auto", "cuda", "mps", "cpu"):
        raise ValueError(f"QWEN3_DEVICE must be auto, cuda, mps or cpu, not {DEVICE!r}")
    max_new_tokens()
    repo_id, local_dir = build_repo_and_local(MODEL, REASONING, LOCAL_DIR)
    return get_model_and_tokenizer(None, repo_id, local_dir, get_device(DEVICE), REASONING,
                                   DTYPES[DTYPE])


def answer_token_ids(model, tokenizer, prompt_ids, stop_ids):
    """Yield the ids of the answer to `prompt_ids` (a list), one at a time, until a stop id."""
    device = model.tok_emb.weight.device
    prompt = trim_input_tensor(torch.tensor([prompt_ids], device=device),
                               model.cfg["context_length"], max_new_tokens())
    for token in generate_text_basic_stream(model, prompt, max_new_tokens(),
                                            eos_token_id=tokenizer.eos_token_id):
        token_id = token.item()
        if token_id in stop_ids:
            return
        yield token_id


def greeting(loaded, note=""):
    """The page's first message, once `loaded` (a ModelAtStartup) holds the model and tokenizer.

    Empty when it could not be loaded: `greet` then shows the problem instead.
    """
    if not loaded.ready():
        return ""
    model, _ = loaded.model
    name = f"Qwen3 {MODEL}" + ("" if REASONING else " Base")
    return f"{name} is ready on `{model.tok_emb.weight.device}`.{note}"
