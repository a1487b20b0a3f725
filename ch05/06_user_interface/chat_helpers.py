"""What the chat apps of chapters 5 to 7 share: streaming answers, and start-up problems.

The apps of ch06/04_user_interface and ch07/06_user_interface copy these
definitions into their `previous_chapters.py` (this file is their home).

- `generate_stream` yields one new token id at a time, made by chapter 5's
  `generate` itself (one token per call), so the app samples exactly as the
  chapter does and can show each token as soon as it exists.
- `decode_stream` turns those ids into text pieces for the page.
- `stream_reply` sends the pieces into one chat message as they arrive,
  computing each piece outside Chainlit's event loop so the page stays live;
  `stream_continuation` does all three for a prompt.
- `ModelAtStartup` loads the model once, at start-up; when that fails it
  keeps a message for the page (what is missing and the command that makes
  it) instead of a traceback in the terminal, and tries again for each new chat.
"""

import asyncio

from previous_chapters import generate, text_to_token_ids

# GPT-2's <|endoftext|>: chapter 7's finetuned models end their answers with it.
END_OF_TEXT_ID = 50256


def generate_stream(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None,
                    eos_id=None):
    """Yield the ids of up to `max_new_tokens` tokens that continue `idx` (a batch of one).

    Calling chapter 5's `generate` for one token at a time gives the same
    sampling (temperature, top-k, context cropping) and stops where it stops:
    at `eos_id`, which is not yielded.
    """
    for _ in range(max_new_tokens):
        longer = generate(model, idx, 1, context_size, temperature=temperature, top_k=top_k,
                          eos_id=eos_id)
        if longer.shape[1] == idx.shape[1]:  # generate stopped at eos_id
            return
        idx = longer
        yield idx[0, -1].item()


def decode_stream(token_ids, tokenizer):
    """Yield the text of the ids in `token_ids`, piece by piece, as they arrive.

    GPT-2's tokens are bytes: a character such as "é" or an emoji may be split
    over two or more tokens, and decoding half of it gives "\\ufffd". A piece
    is held back until its last character is complete, so the page never
    shows a broken character that the next token would have repaired.
    """
    ids, shown = [], ""
    for token_id in token_ids:
        ids.append(token_id)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue
        yield text[len(shown):]
        shown = text
    text = tokenizer.decode(ids)  # what was held back when the stream ended
    if len(text) > len(shown):
        yield text[len(shown):]


async def send_text(text):
    """Show `text` (Markdown) as a new message of the app in the chat page."""
    import chainlit as cl  # see stream_reply

    await cl.Message(content=text).send()


async def stream_reply(pieces, empty_note="(The model's answer is empty.)"):
    """Show the text pieces of the iterator `pieces` in one new chat message.

    Each piece is computed in a worker thread (a model step takes from
    milliseconds to seconds), so Chainlit's event loop keeps serving the page
    and every piece appears as soon as it exists. Returns the whole text.
    """
    # Imported here, not at the top: the token functions above then work without
    # Chainlit, whose import takes seconds and writes .chainlit/ into the working folder.
    import chainlit as cl

    reply = cl.Message(content="")
    pieces = iter(pieces)
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        await reply.stream_token(piece)
    if not reply.content.strip():
        reply.content = empty_note
    await reply.send()
    return reply.content


async def stream_continuation(text, model, tokenizer, device, max_new_tokens=50,
                              temperature=1.0, top_k=50):
    """Continue `text` with `model` in a new chat message, token by token; return the answer.

    The defaults sample as chapter 5 shows it (section 5.3); temperature 0
    with top_k None is greedy decoding, as chapter 7 answers instructions.
    """
    idx = text_to_token_ids(text, tokenizer).to(device)
    token_ids = generate_stream(model, idx, max_new_tokens,
                                context_size=model.pos_emb.weight.shape[0],
                                temperature=temperature, top_k=top_k, eos_id=END_OF_TEXT_ID)
    return await stream_reply(decode_stream(token_ids, tokenizer))


def missing_file_message(what, path, command, folder, env_var):
    """Markdown for the page: which file is missing, and how to make or point to it."""
    return (
        f"**{what} is missing:** there is no file at `{path}`.\n\n"
        f"Create it by running, in the course's folder `{folder}`,\n\n"
        f"```bash\n{command}\n```\n\n"
        f"then reload this page. To use a file elsewhere, start the app with "
        f"`{env_var}` set to its path, e.g. `{env_var}=path/to/file chainlit run app.py`."
    )


class ModelAtStartup:
    """The app's model, loaded once, when the app starts.

    When it cannot be loaded (its file is missing, say), `problem` holds a
    message for the page instead of a traceback in the terminal, and each new
    chat tries once more: a reader who has just created the file only needs to
    reload the page. `load(*args)` raises FileNotFoundError with the page's
    message (see `missing_file_message`) when its file is missing; any other
    error (a damaged file, a checkpoint of another model) is named in a short
    message.
    """

    def __init__(self, load, *args):
        self._load, self._args = load, args
        self.model, self.problem = None, None
        self.ready()

    def ready(self):
        """True when the model is loaded (trying again if it is not yet)."""
        if self.model is None:
            try:
                self.model, self.problem = self._load(*self._args), None
            except FileNotFoundError as err:
                self.problem = str(err)
            except Exception as err:  # shown in the page, where the reader looks
                first_lines = "\n".join(str(err).splitlines()[:6])
                self.problem = (f"**The model could not be loaded** ({type(err).__name__}):"
                                f"\n\n```\n{first_lines}\n```")
        return self.model is not None

    async def greet(self, greeting):
        """Open a chat with `greeting` when the model is ready, else with what is missing."""
        await send_text(greeting if self.ready() else self.problem)

    async def explain_if_missing(self):
        """True, after telling the page what is missing, when the model is not loaded."""
        if self.ready():
            return False
        await send_text(self.problem)
        return True
