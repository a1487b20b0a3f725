"""What some notebooks need around them in the test suite, beyond small parameters.

A notebook's entry in a `notebook_parameters.json` may name setups here:

    {"ch07/03_model-evaluation/llm-instruction-eval-ollama.ipynb":
        {"setups": ["llm_servers"]}}

Each setup is a context manager that takes the test's temporary folder and yields a
dictionary with the environment variables the notebook's kernel needs ("env", for example
the address of a local server) and parameters to inject ("parameters", for example the path
of a model file it wrote). Whatever it started is stopped on exit. Files from the Hugging
Face hub are not a setup: a notebook lists the repositories it downloads under
"hf_hub_repos" and fake_hub.py serves them.
"""

from contextlib import contextmanager
from pathlib import Path

from support.course_imports import import_course_module

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
