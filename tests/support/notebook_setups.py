"""What some notebooks need around them in the test suite, beyond small parameters.

A notebook's entry in a `notebook_parameters.json` may name setups here:

    {"ch05/02_alternative_weight_loading/weight-loading-hf-safetensors.ipynb":
        {"setups": ["gpt2_hub_cache"]}}

Each setup is a context manager that takes the test's temporary folder and yields a
dictionary with the environment variables the notebook's kernel needs ("env", for example a
Hugging Face cache that holds the files the real hub would serve) and parameters to inject
("parameters", for example the path of a model file it wrote). Whatever it started is
stopped on exit.
"""

import hashlib
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from support.course_imports import import_course_module
from filelock import FileLock
from support.openai_gpt2 import random_hf_gpt2

# The small GPT-2 that stands in for every size on the fake hub. Notebooks that build
# our model from a size table get the same sizes injected as MODEL_CONFIG_CHANGES.
TINY_GPT2_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}


def write_hub_snapshot(cache_dir, repo_id, files):
    """Lay out `files` ({name: source path}) as huggingface_hub caches a downloaded repo.

    `models--<org>--<name>/refs/main` names a commit and `snapshots/<commit>/` holds
    the files; with HF_HUB_OFFLINE=1, `hf_hub_download` and `from_pretrained` find
    them there exactly as if they had been downloaded before.
    """
    repo_folder = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(commit)
    snapshot = repo_folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    return snapshot


def write_fake_gpt2_hub(cache_dir, hparams=TINY_GPT2_HPARAMS, seed=0):
    """A hub cache holding one random GPT-2 in the files readers download.

    `openai-community/gpt2` gets `config.json` and `model.safetensors` as
    `GPT2Model.save_pretrained` writes them (OpenAI's names, no `transformer.`
    prefix, as on the hub); `rasbt/gpt2-from-scratch-pytorch` gets the same
    weights as our GPTModel's state dict in `gpt2-small-124M.pth`.
    Returns the Hugging Face model, the reference for the weights.
    """
    import torch

    hf_model = random_hf_gpt2(hparams, seed=seed)
    saved = Path(cache_dir) / "saved"
    hf_model.transformer.save_pretrained(saved)
    write_hub_snapshot(cache_dir, "openai-community/gpt2",
                       {name: saved / name for name in ("config.json", "model.safetensors")})
    hf_conversion = import_course_module("ch04/01_main-chapter-code/hf_conversion.py")
    ours = hf_conversion.gpt_model_from_hf(hf_model)
    torch.save(ours.state_dict(), saved / "ours.pth")
    write_hub_snapshot(cache_dir, "rasbt/gpt2-from-scratch-pytorch",
                       {"gpt2-small-124M.pth": saved / "ours.pth"})
    shutil.rmtree(saved)
    return hf_model


@contextmanager
def gpt2_hub_cache(tmp_path):
    cache = Path(tmp_path) / "hub-cache"
    write_fake_gpt2_hub(cache)
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}}


@contextmanager
def llama32_tokenizer_hub(tmp_path):
    """A hub cache holding only Llama 3.2's `original/tokenizer.model` (a small BPE).

    For notebooks that train from random weights and need Meta's gated tokenizer
    file only; much faster than `hf_hub_repos`, which also writes a model.
    """
    from support.llama_checkpoints import write_tiktoken_bpe

    cache = Path(tmp_path) / "llama-tokenizer-hub"
    snapshot = write_hub_snapshot(cache, "meta-llama/Llama-3.2-1B-Instruct", {})
    (snapshot / "original").mkdir()
    write_tiktoken_bpe(snapshot / "original" / "tokenizer.model")
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}}


@contextmanager
def qwen3_tokenizer_hub(tmp_path):
    """A hub cache holding only Qwen/Qwen3-0.6B-Base's `tokenizer.json` (a small BPE).

    For notebooks that train Qwen3 from random weights: they need the tokenizer file only.
    """
    from support.qwen3_checkpoints import write_qwen3_tokenizer_json

    cache = Path(tmp_path) / "qwen3-tokenizer-hub"
    staging = write_qwen3_tokenizer_json(Path(tmp_path) / "tokenizer.json")
    write_hub_snapshot(cache, "Qwen/Qwen3-0.6B-Base", {"tokenizer.json": staging})
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}}


# The small model that stands in for chapter 7's finetuned GPT-2 in the DPO notebook
TINY_GPT_CHANGES = {"emb_dim": 32, "n_heads": 2, "n_layers": 2}


@contextmanager
def tiny_sft_model(tmp_path):
    """A random-weight GPTModel state dict where the DPO notebook expects chapter 7's model."""
    import torch

    chapter = import_course_module("ch07/04_preference-tuning-with-dpo/previous_chapters.py")
    config = {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0, "qkv_bias": True,
              **TINY_GPT_CHANGES}
    torch.manual_seed(0)
    path = Path(tmp_path) / "tiny-sft.pth"
    torch.save(chapter.GPTModel(config).state_dict(), path)
    yield {"parameters": {"SFT_MODEL_PATH": str(path), "MODEL_CONFIG_CHANGES": TINY_GPT_CHANGES}}


def notebook_llm_reply(body):
    """A fitting, deterministic answer to each prompt of the chapter 7 bonus notebooks."""
    import zlib

    prompt = body["prompt"] if "prompt" in body else body["messages"][-1]["content"]
    if body.get("raw"):  # Llama 3's template cut before the user's message
        return "Explain how rainbows form."
    if "score the model response" in prompt:
        return str(30 + zlib.crc32(prompt.encode()) % 71)
    if "[New Instruction]" in prompt:
        return ("Clear, but short.\n[New Instruction]\n"
                "Name the three primary colors of paint and say why they are called primary.")
    if "[Better Response]" in prompt:
        return ("Correct but thin.\n[Better Response]\n"
                "Red, yellow and blue: they cannot be mixed from other colors.")
    if "passive voice" in prompt:
        return '"The answer was rewritten by the model."'
    if "less polite" in prompt:
        return "Obviously, the answer is this."
    if "more polite" in prompt:
        return "Thank you for asking! The answer is this."
    return "Llamas eat grass and hay."


@contextmanager
def llm_servers(tmp_path):
    """Local servers speaking Ollama's and OpenAI's APIs, found through the usual variables.

    The notebooks read OLLAMA_HOST, OPENAI_BASE_URL and OPENAI_API_KEY as they would
    on a reader's machine. On exit, every request must have asked for seed and
    temperature, as the course's clients do.
    """
    from support.llm_servers import FakeOllama, FakeOpenAI

    api_key = "sk-notebook-test-key"
    with FakeOllama(default=notebook_llm_reply) as ollama, \
            FakeOpenAI(default=notebook_llm_reply, api_key=api_key) as openai_api:
        yield {"env": {"OLLAMA_HOST": ollama.url, "OPENAI_BASE_URL": openai_api.url,
                       "OPENAI_API_KEY": api_key}}
    requests = ollama.bodies + openai_api.bodies
    assert requests, "the notebook sent no request to the local LLM servers"
    for body in requests:
        settings = body.get("options", body)
        assert "seed" in settings and "temperature" in settings, body


@contextmanager
def gemma3_hub_cache(tmp_path):
    """Tiny random-weight stand-ins for Google's gated Gemma 3 270M repositories."""
    from support.gemma3_checkpoints import write_fake_gemma3_hub

    cache = Path(tmp_path) / "gemma3-hub-cache"
    write_fake_gemma3_hub(cache)
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}}


@contextmanager
def qwen3_hub_dense(tmp_path):
    """Qwen/Qwen3-0.6B: one model.safetensors (tied head) and tokenizer.json, tiny and random."""
    from support.qwen3_checkpoints import qwen3_hub_cache

    with qwen3_hub_cache(tmp_path, ["Qwen/Qwen3-0.6B"]) as provided:
        yield provided


@contextmanager
def qwen3_hub_sharded(tmp_path):
    """Qwen/Qwen3-1.7B: safetensors shards with model.safetensors.index.json, tiny and random."""
    from support.qwen3_checkpoints import qwen3_hub_cache

    with qwen3_hub_cache(tmp_path, ["Qwen/Qwen3-1.7B"]) as provided:
        yield provided


@contextmanager
def qwen3_hub_moe(tmp_path):
    """Qwen/Qwen3-Coder-30B-A3B-Instruct: a tiny mixture of experts, sharded with an index."""
    from support.qwen3_checkpoints import qwen3_hub_cache

    with qwen3_hub_cache(tmp_path, ["Qwen/Qwen3-Coder-30B-A3B-Instruct"]) as provided:
        yield provided



def tiny_model_hub(tmp_path, notebook, config_name, repo_id, writer, overrides):
    """A hub cache serving `repo_id` as a tiny random model that `writer` lays out,
    built from the notebook's configuration `config_name`; the notebook gets the
    tiny sizes as CONFIG_OVERRIDES (and for its speed measurement)."""
    from support.course_imports import notebook_definitions
    from support.olmo3_tiny_aya_checkpoints import hub_cache_with

    base_cfg = getattr(notebook_definitions(notebook), config_name)
    repo = writer(Path(tmp_path) / "tiny-repo", base_cfg)
    cache = hub_cache_with(Path(tmp_path) / "hub-cache", repo_id, repo)
    return {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
            "parameters": {"CONFIG_OVERRIDES": overrides, "MAX_NEW_TOKENS": 5,
                           "BENCHMARK_CONFIG_CHANGES": overrides, "BENCHMARK_TOKENS": 3}}


@contextmanager
def olmo3_hub_cache(tmp_path):
    """allenai/Olmo-3-7B-Instruct as a tiny random model in the real layout, offline."""
    from support.olmo3_tiny_aya_checkpoints import TINY_OLMO3_OVERRIDES, write_olmo3_repo

    yield tiny_model_hub(tmp_path, "ch05/13_olmo3/standalone-olmo3.ipynb", "OLMO3_CONFIG_7B",
                         "allenai/Olmo-3-7B-Instruct", write_olmo3_repo, TINY_OLMO3_OVERRIDES)


@contextmanager
def tiny_aya_hub_cache(tmp_path):
    """CohereLabs/tiny-aya-global as a tiny random model in the real layout, offline."""
    from support.olmo3_tiny_aya_checkpoints import TINY_AYA_OVERRIDES, write_tiny_aya_repo

    yield tiny_model_hub(tmp_path, "ch05/15_tiny-aya/standalone-tiny-aya.ipynb",
                         "TINY_AYA_CONFIG", "CohereLabs/tiny-aya-global", write_tiny_aya_repo,
                         TINY_AYA_OVERRIDES)


@contextmanager
def qwen3_5_hub_cache(tmp_path):
    """Qwen/Qwen3.5-0.8B in a local hub cache, tiny and random; the notebooks get its config."""
    import torch
    from support.qwen3_5_checkpoints import (QWEN3_5_REPO_ID, TINY_QWEN3_5_OVERRIDES,
                                     tiny_qwen3_5_config, write_qwen3_5_repo)

    # Seeded, so a copy kept from an earlier notebook or run equals a fresh one.
    files = Path(tempfile.gettempdir()) / "llms-from-scratch-test-checkpoints" / "qwen3.5-tiny"
    files.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(files) + ".lock"):
        if not (files / ".complete").exists():
            shutil.rmtree(files, ignore_errors=True)
            files.mkdir()
            write_qwen3_5_repo(files, tiny_qwen3_5_config(torch.float32))
            (files / ".complete").touch()
    cache = Path(tmp_path) / "hub-cache"
    write_hub_snapshot(cache, QWEN3_5_REPO_ID,
                       {p.name: p for p in files.iterdir() if p.name != ".complete"})
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
           "parameters": {"CONFIG_OVERRIDES": TINY_QWEN3_5_OVERRIDES}}


@contextmanager
def gemma4_hub_cache(tmp_path):
    """google/gemma-4-E2B(-it) in a local hub cache, tiny and random, and its config."""
    import torch
    from support.gemma4_checkpoints import (GEMMA4_REPOS, TINY_GEMMA4_OVERRIDES, tiny_gemma4_config,
                                    write_gemma4_repo)

    # Seeded, so written once per machine and shared by both notebooks: a fresh folder is
    # renamed into place whole, so a half-written one is never seen.
    import tempfile

    files = Path(tempfile.gettempdir()) / "llms-from-scratch-test-checkpoints" / "gemma4-tiny"
    if not files.exists():
        files.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(dir=files.parent))
        write_gemma4_repo(fresh, tiny_gemma4_config(torch.float32))
        try:
            fresh.rename(files)
        except OSError:  # another run got there first
            shutil.rmtree(fresh)
    cache = Path(tmp_path) / "hub-cache"
    for repo_id in GEMMA4_REPOS:
        write_hub_snapshot(cache, repo_id, {p.name: p for p in files.iterdir()})
    yield {"env": {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
           "parameters": {"CONFIG_OVERRIDES": TINY_GEMMA4_OVERRIDES}}
