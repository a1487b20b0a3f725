"""Give instructions to chapter 7's instruction-finetuned GPT-2, in the browser.

    pip install -r requirements-extra.txt
    chainlit run app.py               # then open http://localhost:8000

Type an instruction ("Rewrite the sentence in the passive voice."); to give
it an input too, add the input after a blank line (Shift+Enter makes a new
line). The app builds the chapter's Alpaca-style prompt with `format_input`,
adds the "### Response:" header the model learned to answer after, and shows
the answer token by token (greedy decoding, as in chapter 7, up to the
end-of-text token the model learned to write after an answer).

The model is the one chapter 7 finetunes and saves (gpt_instruction_finetuning.py
or ch07.ipynb): `gpt2-medium355M-sft.pth` for the book's GPT-2 355M run. A file
written by the script stores the model's configuration; the book's plain
`torch.save(model.state_dict(), ...)` is read as GPT-2 355M. Setting
(environment variable):

    MODEL_PATH   the finetuned model to load
                 (default: ../01_main-chapter-code/gpt2-medium355M-sft.pth, beside this app)
"""

import os
from pathlib import Path

import chainlit as cl
import tiktoken
from downloads import cache_gpt2_tokenizer_files
from previous_chapters import (
    GPT_CONFIG_124M,
    ModelAtStartup,
    default_device,
    format_input,
    load_trained_gpt,
    missing_file_message,
    stream_continuation,
)

# Copied from ch05/06_user_interface/app_orig.py::HERE
HERE = Path(__file__).resolve().parent
SFT_MODEL_PATH = Path(os.environ.get(
    "MODEL_PATH", HERE.parent / "01_main-chapter-code" / "gpt2-medium355M-sft.pth"))

# The book's finetuned model, for a checkpoint that stores no configuration:
# GPT-2 medium (355M) with OpenAI's settings.
BOOK_SFT_CONFIG = {**GPT_CONFIG_124M, "emb_dim": 1024, "n_heads": 16, "n_layers": 24,
                   "drop_rate": 0.0, "qkv_bias": True}
# Chapter 7 lets the finetuned model answer the test set with up to 256 new tokens.
MAX_ANSWER_TOKENS = 256


def load_sft_model(path):
    """The finetuned GPTModel at `path`, on the best device; FileNotFoundError if none."""
    if not path.is_file():
        raise FileNotFoundError(missing_file_message(
            "The instruction-finetuned model", path,
            "python gpt_instruction_finetuning.py  # the book's run, writes "
            "gpt2-medium355M-sft.pth\n"
            "python gpt_instruction_finetuning.py --test-mode  # a tiny stand-in: "
            "test-model-sft.pth",
            "ch07/01_main-chapter-code", "MODEL_PATH"))
    return load_trained_gpt(path, BOOK_SFT_CONFIG).to(DEVICE).eval()


def prompt_from_message(text):
    """The chapter's prompt for a message: an instruction, then an input after a blank line.

    `format_input` writes the preamble, the instruction and (if there is one)
    the input; the finetuning texts continue with "\\n\\n### Response:\\n" and
    the answer, so ending the prompt with that header makes the model's next
    tokens the answer itself.
    """
    instruction, _, input_text = text.strip().partition("\n\n")
    entry = {"instruction": instruction.strip(), "input": input_text.strip()}
    return format_input(entry) + "\n\n### Response:\n"


# Copied from ch05/06_user_interface/app_orig.py::DEVICE
DEVICE = default_device()
SFT_MODEL = ModelAtStartup(load_sft_model, SFT_MODEL_PATH)
cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
# Copied from ch05/06_user_interface/app_orig.py::TOKENIZER
TOKENIZER = tiktoken.get_encoding("gpt2")


@cl.on_chat_start
async def greet_with_assistant():
    await SFT_MODEL.greet(f"The finetuned model from `{SFT_MODEL_PATH.name}` is ready "
                          f"on `{DEVICE}`. Type an instruction; to add an input, put it "
                          "after a blank line.")


@cl.on_message
async def main(message: cl.Message):
    if not await SFT_MODEL.explain_if_missing():
        await stream_continuation(prompt_from_message(message.content), SFT_MODEL.model, TOKENIZER,
                                  DEVICE, max_new_tokens=MAX_ANSWER_TOKENS, temperature=0.0,
                                  top_k=None)
