"""Ask chapter 6's spam classifier about any text message, in the browser.

    pip install -r requirements-extra.txt
    chainlit run app.py               # then open http://localhost:8000

Type a text message; the page answers "spam" or "not spam" and how sure the
model is (the softmax probability of that class).

The model is the one chapter 6 finetunes and saves as review_classifier.pth
(gpt_class_finetune.py, or the notebook ch06.ipynb). A file written by
gpt_class_finetune.py stores the model's configuration and the length the
training messages were padded to; the book's plain
`torch.save(model.state_dict(), "review_classifier.pth")` is read as the book's
model (GPT-2 124M, two classes, messages padded to 120 tokens). Setting
(environment variable):

    MODEL_PATH   the classifier to load
                 (default: ../01_main-chapter-code/review_classifier.pth, beside this app)
"""

import asyncio
import os
from pathlib import Path

import chainlit as cl
import tiktoken
import torch
from downloads import cache_gpt2_tokenizer_files
from previous_chapters import (
    GPT_CONFIG_124M,
    GPTModel,
    ModelAtStartup,
    classify_review,
    default_device,
    load_checkpoint,
    missing_file_message,
    send_text,
)

# Copied from ch05/06_user_interface/app_orig.py::HERE
HERE = Path(__file__).resolve().parent
CLASSIFIER_PATH = Path(os.environ.get(
    "MODEL_PATH", HERE.parent / "01_main-chapter-code" / "review_classifier.pth"))

# The book's classifier, for a checkpoint that stores no configuration: GPT-2
# 124M with OpenAI's settings, a two-class head, and the padded length of the
# book's training messages.
BOOK_CLASSIFIER_CONFIG = {**GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True,
                          "num_classes": 2, "max_length": 120}


def load_classifier(path):
    """(model, config) from `path`, on the best device; FileNotFoundError if there is none."""
    if not path.is_file():
        raise FileNotFoundError(missing_file_message(
            "The spam classifier", path,
            "python gpt_class_finetune.py  # the book's run, writes review_classifier.pth\n"
            "python gpt_class_finetune.py --test-mode  # an untrained stand-in, in seconds",
            "ch06/01_main-chapter-code", "MODEL_PATH"))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = checkpoint.get("config", BOOK_CLASSIFIER_CONFIG)
    model = GPTModel(config)
    model.out_head = torch.nn.Linear(config["emb_dim"], config["num_classes"])
    load_checkpoint(path, model)  # names every tensor that does not fit the configuration
    return model.to(DEVICE).eval(), config


def classify_with_probability(text, model, tokenizer, device, max_length=None):
    """(label, probability): chapter 6's `classify_review`, and how sure the model is.

    `classify_review` decides from the logits of the last position; a hook on
    the output layer keeps those logits while it runs, so the label and its
    softmax probability come from one and the same forward pass.
    """
    logits = []
    hook = model.out_head.register_forward_hook(
        lambda module, inputs, output: logits.append(output[:, -1, :]))
    try:
        label = classify_review(text, model, tokenizer, device, max_length=max_length)
    finally:
        hook.remove()
    probabilities = torch.softmax(logits[-1][0], dim=-1)
    return label, probabilities[1 if label == "spam" else 0].item()


# Copied from ch05/06_user_interface/app_orig.py::DEVICE
DEVICE = default_device()
CLASSIFIER = ModelAtStartup(load_classifier, CLASSIFIER_PATH)
cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
# Copied from ch05/06_user_interface/app_orig.py::TOKENIZER
TOKENIZER = tiktoken.get_encoding("gpt2")


@cl.on_chat_start
async def greet_with_classifier():
    await CLASSIFIER.greet(f"The spam classifier from `{CLASSIFIER_PATH.name}` is ready "
                           f"on `{DEVICE}`. Type a text message and it tells you whether "
                           "it looks like spam.")


@cl.on_message
async def main(message: cl.Message):
    if await CLASSIFIER.explain_if_missing():
        return
    model, config = CLASSIFIER.model
    label, probability = await asyncio.to_thread(  # keeps the page live meanwhile
        classify_with_probability, message.content, model, TOKENIZER, DEVICE,
        max_length=config["max_length"])
    await send_text(f"**{label}** (probability {probability:.1%})")
