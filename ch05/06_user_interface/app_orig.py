"""Chat with OpenAI's pretrained GPT-2, loaded with chapter 5's code, in the browser.

    pip install -r requirements-extra.txt
    chainlit run app_orig.py          # then open http://localhost:8000

Type the start of a text; the model continues it and the page shows each
token as it is generated. GPT-2 is not finetuned to follow instructions or to
chat (chapter 7 does that): it writes what could come next.

The weights are OpenAI's TensorFlow checkpoint, read with `download_and_load_gpt2`
and copied into our `GPTModel` with `load_weights_into_gpt`, as in chapter 5.
They are downloaded on the first start (or copied from $LLMS_FROM_SCRATCH_MIRROR)
into the folder chapter 5 uses, so a model the chapter already downloaded is
reused. Settings (environment variables):

    GPT2_MODEL_SIZE   124M (default), 355M, 774M or 1558M
    GPT2_MODELS_DIR   where the sizes' folders are kept
                      (default: ../01_main-chapter-code/gpt2, beside this app)
"""

import os
from pathlib import Path

import chainlit as cl
import tiktoken
from chat_helpers import ModelAtStartup, stream_continuation
from downloads import MIRROR_ENV_VAR, DownloadError, cache_gpt2_tokenizer_files
from previous_chapters import (
    GPT2_BASE_URL,
    default_device,
    load_openai_gpt2,
)

HERE = Path(__file__).resolve().parent
MODEL_SIZE = os.environ.get("GPT2_MODEL_SIZE", "124M")
MODELS_DIR = Path(os.environ.get("GPT2_MODELS_DIR", HERE.parent / "01_main-chapter-code" / "gpt2"))


def load_gpt2(model_size, models_dir):
    """OpenAI's GPT-2 in our GPTModel, on the best device; FileNotFoundError if unavailable."""
    try:
        model = load_openai_gpt2(model_size, models_dir)
    except DownloadError as err:
        raise FileNotFoundError(
            f"**GPT-2 {model_size} could not be downloaded** (no network?).\n\n"
            f"Download it with chapter 5's script, from the folder `ch05/01_main-chapter-code`:"
            f"\n\n```bash\npython gpt_generate.py --model-size {model_size}\n```\n\n"
            f"or place OpenAI's seven files from {GPT2_BASE_URL}/{model_size}/ in "
            f"`{Path(models_dir) / model_size}`, or set `{MIRROR_ENV_VAR}` to a folder "
            f"holding `gpt-2/models/{model_size}/`; then reload this page. "
            f"The download helper said:\n\n```\n{err}\n```"
        ) from err
    return model.to(DEVICE).eval()


DEVICE = default_device()
GPT2 = ModelAtStartup(load_gpt2, MODEL_SIZE, MODELS_DIR)
cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
TOKENIZER = tiktoken.get_encoding("gpt2")


@cl.on_chat_start
async def greet_with_gpt2():
    await GPT2.greet(f"OpenAI's GPT-2 {MODEL_SIZE} is ready on `{DEVICE}`. "
                      "Type the start of a text and it writes what comes next.")


@cl.on_message
async def main(message: cl.Message):
    if not await GPT2.explain_if_missing():
        await stream_continuation(message.content, GPT2.model, TOKENIZER, DEVICE)
