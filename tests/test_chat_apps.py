"""The chat apps of ch05, ch06 and ch07, used in a real browser as a reader uses them.

Each test starts one app as a real Chainlit server on 127.0.0.1 before its
model exists: headless Chromium opens the page, which must show what is
missing and the command that creates it (a message sent anyway gets the same
answer). The test then writes a tiny random-weight model in the format the
chapter saves (for OpenAI's GPT-2, the release files), reloads the page as the
message says, types a message and reads the answer. Screenshots of each app
are written to the test's temporary folder; the server is stopped in
`finally`, also when a check fails.
"""

import re
import shutil

import pytest
import torch
from chat_browser import (
    ChainlitServer,
    chromium_browser,
    last_answer,
    missing_requirements,
    open_chat,
    send_message,
)
from support.course_imports import REPO_ROOT, import_course_module
from support.helpers import tiny_gpt_config

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

CH05_UI = "ch05/06_user_interface"
TINY_OPENAI_HPARAMS = {"n_embd": 32, "n_head": 2, "n_layer": 2}
# Downloads fail at once, network or not: requests go to a closed local port.
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "no_proxy": "", "NO_PROXY": "", "LLMS_FROM_SCRATCH_MIRROR": ""}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, chromium_browser(playwright) as chromium:
        yield chromium


def tiny_model(folder, seed=0, **config_changes):
    """A GPTModel (from the folder's code) with seeded random weights, and its config."""
    course = import_course_module(f"{folder}/previous_chapters.py")
    config = tiny_gpt_config(**config_changes)
    torch.manual_seed(seed)
    return course.GPTModel(config).eval(), config


def gpt2_tokenizer(folder):
    """tiktoken's GPT-2 encoding, made available offline by the folder's downloads.py."""
    import tiktoken

    import_course_module(f"{folder}/downloads.py").cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


def save_like_the_chapter(path, model, config):
    """The checkpoint layout of the chapters' save_checkpoint: weights plus configuration."""
    torch.save({"model_state_dict": model.state_dict(), "config": config}, path)
    return path


def watch_answer_text(page):
    """Record every text the newest answer shows, to see tokens arrive one by one."""
    page.evaluate("""() => {
        window.answerTexts = [];
        new MutationObserver(() => {
            const answers = document.querySelectorAll(".step[data-step-type='assistant_message']");
            const text = answers.length ? answers[answers.length - 1].innerText : "";
            if (window.answerTexts.at(-1) !== text) window.answerTexts.push(text);
        }).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""")


def use_app(browser, app, tmp_path, env, create_model, message, watch_streaming=False):
    """Start `app` without its model, then `create_model()` and chat; stop the server.

    Returns (missing-model message, greeting, answer, and with `watch_streaming`
    the texts the answer showed while it streamed).
    """
    server, page = ChainlitServer(REPO_ROOT / app, tmp_path / "workdir", env), None
    try:
        server.wait_until_ready()
        page = open_chat(browser, server)
        problem = last_answer(page, 1)
        page.screenshot(path=tmp_path / "1-missing-model.png")
        send_message(page, message)  # asking anyway repeats what is missing
        assert last_answer(page, 2) == problem

        create_model()
        page.reload()  # what the message says
        greeting = last_answer(page, 1)
        page.screenshot(path=tmp_path / "2-ready.png")
        if watch_streaming:
            watch_answer_text(page)
        send_message(page, message)
        answer = last_answer(page, 2)
        page.screenshot(path=tmp_path / "3-answer.png")
        return problem, greeting, answer, page.evaluate("window.answerTexts || null")
    finally:
        if page is not None:
            page.close()
        server.stop()


def letters_and_digits(text):
    """Text without whitespace and markup characters (the page renders Markdown)."""
    return re.sub(r"[\W_]+", "", text)


def test_gpt2_app_explains_a_failed_download_then_continues_text(browser, tmp_path,
                                                                 course_mirror):
    release = course_mirror(["124M"], TINY_OPENAI_HPARAMS) / "gpt-2" / "models" / "124M"
    models_dir = tmp_path / "gpt2"

    def place_files_by_hand():  # the message's advice, with a tiny random-weight release
        (models_dir / "124M").mkdir(parents=True, exist_ok=True)
        for file in release.iterdir():
            shutil.copy(file, models_dir / "124M" / file.name)

    env = {**NO_NETWORK, "GPT2_MODELS_DIR": str(models_dir)}
    problem, greeting, answer, _ = use_app(browser, f"{CH05_UI}/app_orig.py", tmp_path, env,
                                           place_files_by_hand, "Every effort moves you")

    assert "could not be downloaded" in problem and "Traceback" not in problem
    assert "python gpt_generate.py --model-size 124M" in problem
    assert "GPT-2 124M is ready" in greeting
    assert answer and answer != greeting


def test_own_model_app_explains_a_missing_file_then_streams_a_continuation(browser, tmp_path):
    model, config = tiny_model(CH05_UI)
    checkpoint = tmp_path / "model.pth"
    problem, greeting, answer, streamed = use_app(
        browser, f"{CH05_UI}/app_own.py", tmp_path, {"MODEL_PATH": str(checkpoint)},
        lambda: save_like_the_chapter(checkpoint, model, config), "Every effort moves you",
        watch_streaming=True)

    assert str(checkpoint) in problem and "python gpt_train.py" in problem
    assert "MODEL_PATH" in problem and "Traceback" not in problem
    assert "model.pth" in greeting and "ready" in greeting
    assert answer and answer != greeting
    # tokens arrive one after another: the page showed growing parts of the answer
    partial = [text for text in streamed if text.strip() and text.strip() != answer]
    assert partial, f"the answer appeared all at once: {streamed}"


def test_spam_classifier_app_labels_a_message_with_its_probability(browser, tmp_path):
    folder = "ch06/04_user_interface"
    course = import_course_module(f"{folder}/previous_chapters.py")
    model, config = tiny_model(folder, context_length=64, qkv_bias=True)
    torch.manual_seed(1)
    model.out_head = torch.nn.Linear(config["emb_dim"], 2)
    config = {**config, "num_classes": 2, "max_length": 20}
    checkpoint = tmp_path / "review_classifier.pth"
    message = "You are a winner! Text WIN to 80808 to claim your free cruise."
    problem, greeting, answer, _ = use_app(
        browser, f"{folder}/app.py", tmp_path, {"MODEL_PATH": str(checkpoint)},
        lambda: save_like_the_chapter(checkpoint, model, config), message)

    # the reference: the padded message through the model, softmax of the last logits
    tokenizer = gpt2_tokenizer(folder)
    ids = tokenizer.encode(message)[:20]
    ids += [50256] * (20 - len(ids))
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.tensor([ids]))[0, -1], dim=-1)
    label = "spam" if probabilities[1] > probabilities[0] else "not spam"
    assert label == course.classify_review(message, model, tokenizer, "cpu", max_length=20)

    assert "python gpt_class_finetune.py" in problem and "Traceback" not in problem
    assert "spam classifier" in greeting
    shown = re.fullmatch(r"(spam|not spam) \(probability ([\d.]+)%\)", answer)
    assert shown, answer
    assert shown[1] == label
    assert float(shown[2]) == pytest.approx(100 * probabilities.max().item(), abs=0.05)


def test_instruction_app_answers_in_the_chapters_prompt_style(browser, tmp_path):
    chapter = "ch07/01_main-chapter-code"  # the reference: the chapter's own code
    format_input = import_course_module(f"{chapter}/gpt_instruction_finetuning.py").format_input
    course = import_course_module(f"{chapter}/previous_chapters.py")
    model, config = tiny_model(chapter, context_length=256, qkv_bias=True)
    with torch.no_grad():  # a louder <|endoftext|>: the answer ends early, as a finetuned one does
        model.out_head.weight[50256] *= 2
    checkpoint = tmp_path / "test-model-sft.pth"
    instruction = "Rewrite the sentence in the passive voice."
    input_text = "The committee approved the new budget."
    problem, greeting, answer, _ = use_app(
        browser, "ch07/06_user_interface/app.py", tmp_path, {"MODEL_PATH": str(checkpoint)},
        lambda: save_like_the_chapter(checkpoint, model, config),
        f"{instruction}\n\n{input_text}")

    # chapter 7's prompt with the response header, chapter 5's greedy generate for up to
    # the chapter's 256 new tokens, stopped at <|endoftext|>
    tokenizer = gpt2_tokenizer(chapter)
    prompt = format_input({"instruction": instruction, "input": input_text})
    prompt_ids = course.text_to_token_ids(prompt + "\n\n### Response:\n", tokenizer)
    token_ids = course.generate(model, prompt_ids, max_new_tokens=256, context_size=256,
                                eos_id=50256)
    new_ids = token_ids[0, prompt_ids.shape[1]:].tolist()
    assert 0 < len(new_ids) < 256, "the reference answer should end at <|endoftext|>"

    assert "python gpt_instruction_finetuning.py" in problem and "--test-mode" in problem
    assert "Traceback" not in problem
    assert "test-model-sft.pth" in greeting
    assert letters_and_digits(answer) == letters_and_digits(tokenizer.decode(new_ids))
