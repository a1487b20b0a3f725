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
from contextlib import contextmanager
from pathlib import Path

from course_imports import import_course_module
from openai_gpt2 import random_hf_gpt2

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
    from llama_checkpoints import write_tiktoken_bpe

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
    from qwen3_checkpoints import write_qwen3_tokenizer_json

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
    from llm_servers import FakeOllama, FakeOpenAI

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
