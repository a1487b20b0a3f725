"""Chat with the GPT model you pretrained in chapter 5 (gpt_train.py's model.pth).

    pip install -r requirements-extra.txt
    chainlit run app_own.py           # then open http://localhost:8000

Type the start of a text; your model continues it and the page shows each
token as it is generated. A model trained on one short story, as in the
book, mostly repeats phrases from that story: that is what it has learned.

The model file is read with chapter 5's `load_trained_gpt`: a model.pth
written by gpt_train.py (which stores the model's configuration), or the
book's `torch.save(model.state_dict(), "model.pth")`, read as the book's
GPT-2 124M with a 256-token context. Setting (environment variable):

    MODEL_PATH   the checkpoint to load
                 (default: ../01_main-chapter-code/model.pth, beside this app)
"""

import os
from pathlib import Path

import chainlit as cl
import tiktoken
from chat_helpers import ModelAtStartup, missing_file_message, stream_continuation
from downloads import cache_gpt2_tokenizer_files
from previous_chapters import BOOK_CONFIG, default_device, load_trained_gpt

# Copied from ch05/06_user_interface/app_orig.py::HERE
HERE = Path(__file__).resolve().parent
OWN_MODEL_PATH = Path(os.environ.get("MODEL_PATH",
                                    HERE.parent / "01_main-chapter-code" / "model.pth"))


def load_own_model(path):
    """The GPTModel saved at `path`, on the best device; FileNotFoundError if there is none."""
    if not path.is_file():
        raise FileNotFoundError(missing_file_message(
            "Your chapter 5 model", path, "python gpt_train.py  # the book's run, writes model.pth",
            "ch05/01_main-chapter-code", "MODEL_PATH"))
    model = load_trained_gpt(path, {**BOOK_CONFIG, "drop_rate": 0.0})
    return model.to(DEVICE).eval()


# Copied from ch05/06_user_interface/app_orig.py::DEVICE
DEVICE = default_device()
OWN_MODEL = ModelAtStartup(load_own_model, OWN_MODEL_PATH)
cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
# Copied from ch05/06_user_interface/app_orig.py::TOKENIZER
TOKENIZER = tiktoken.get_encoding("gpt2")


@cl.on_chat_start
async def greet_with_own_model():
    await OWN_MODEL.greet(f"Your model from `{OWN_MODEL_PATH.name}` is ready on "
                          f"`{DEVICE}`. Type the start of a text and it writes what "
                          "comes next.")


@cl.on_message
async def main(message: cl.Message):
    if not await OWN_MODEL.explain_if_missing():
        await stream_continuation(message.content, OWN_MODEL.model, TOKENIZER, DEVICE)
