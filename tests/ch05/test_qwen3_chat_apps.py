"""The Qwen3 chat apps (ch05/11_qwen3/qwen3-chat-interface) in a real browser.

Each app runs as a Chainlit server on 127.0.0.1 and loads "Qwen/Qwen3-0.6B" from
a local Hugging Face cache holding a tiny Qwen3 with random weights in the hub's
files (offline). Headless Chromium types the messages. The reference for every
answer is independent of the apps' code: transformers' Qwen3ForCausalLM loaded
from the same files, its fast tokenizer's chat template (Qwen3's format) and
greedy `generate`, stopped at <|im_end|>. In the multi-turn app the second
answer must continue the whole conversation, written in the chat format once.
"""

import re

import pytest
import torch
from support.course_imports import REPO_ROOT
from support.fake_hub import write_hub_snapshot
from support.qwen3_checkpoints import hf_qwen3_tokenizer, write_qwen3_repo
from chat_browser import ChainlitServer, last_answer, missing_requirements, open_chat
from chat_browser import send_message

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

FOLDER = REPO_ROOT / "ch05/11_qwen3/qwen3-chat-interface"
REPO_ID = "Qwen/Qwen3-0.6B"
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    from chat_browser import chromium_browser

    with sync_playwright() as playwright, chromium_browser(playwright) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(environment for the apps, reference model, reference tokenizer)."""
    from huggingface_hub import snapshot_download
    from transformers import Qwen3ForCausalLM

    repo = tmp_path_factory.mktemp("repo")
    write_qwen3_repo(repo, REPO_ID, wordy=True)
    cache = tmp_path_factory.mktemp("hub")
    write_hub_snapshot(cache, REPO_ID, repo)
    folder = snapshot_download(REPO_ID, cache_dir=cache, local_files_only=True)
    model = Qwen3ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "QWEN3_DEVICE": "cpu",
           "QWEN3_DTYPE": "float32", "QWEN3_MAX_NEW_TOKENS": str(MAX_NEW_TOKENS)}
    return env, model, hf_qwen3_tokenizer(f"{folder}/tokenizer.json")


def reference_answer(model, tokenizer, messages):
    """Hugging Face's greedy answer to the conversation `messages`, thinking on."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                        enable_thinking=True, return_dict=False)
    prompt = torch.tensor([list(ids)])
    stop = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    out = model.generate(prompt, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                         eos_token_id=stop, pad_token_id=stop[1])[0, prompt.shape[1]:].tolist()
    while out and out[-1] in stop:
        out.pop()
    return tokenizer.decode(out)


def visible(text):
    """What a page shows of `text`, compared without markup: tags and non-word characters go."""
    return re.sub(r"[\W_]+", "", re.sub(r"<[^>]*>", "", text))


def chat(browser, app, tmp_path, env, messages):
    """Start `app`, send `messages` one after another; return the greeting and the answers."""
    server, page = ChainlitServer(FOLDER / app, tmp_path / "workdir", env), None
    try:
        server.wait_until_ready()
        page = open_chat(browser, server)
        greeting = last_answer(page, 1)
        answers = []
        for i, message in enumerate(messages):
            send_message(page, message)
            answers.append(last_answer(page, i + 2))
        page.screenshot(path=tmp_path / "answers.png")
        return greeting, answers
    finally:
        if page is not None:
            page.close()
        server.stop()


def test_single_turn_app_answers_like_hugging_face(browser, hub, tmp_path):
    env, model, tokenizer = hub
    question = "What do llamas eat?"
    greeting, (answer,) = chat(browser, "qwen3-chat-interface.py", tmp_path, env, [question])
    assert "Qwen3 0.6B is ready" in greeting and "cpu" in greeting
    expected = reference_answer(model, tokenizer, [{"role": "user", "content": question}])
    assert len(visible(expected)) > 20, "the reference answer should be words"
    assert visible(answer) == visible(expected)


def test_multi_turn_app_continues_the_conversation(browser, hub, tmp_path):
    env, model, tokenizer = hub
    questions = ["What do llamas eat?", "And alpacas?"]
    greeting, answers = chat(browser, "qwen3-chat-interface-multiturn.py", tmp_path, env,
                             questions)
    assert "remembers this conversation" in greeting
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": questions[0]}]
    first = reference_answer(model, tokenizer, messages)
    assert visible(answers[0]) == visible(first)
    # The answer enters the history without its thinking block, as the app keeps it.
    messages += [{"role": "assistant",
                  "content": re.sub(r"<think>.*?</think>", "", first, flags=re.DOTALL).strip()},
                 {"role": "user", "content": questions[1]}]
    second = reference_answer(model, tokenizer, messages)
    assert visible(answers[1]) == visible(second)
    # and a reply to the second question alone (history forgotten) would differ
    alone = reference_answer(model, tokenizer, [messages[0], messages[-1]])
    assert visible(second) != visible(alone)
