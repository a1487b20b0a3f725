"""Code of earlier chapters that the Qwen3 chat apps use (copies, checked by a test).

From ch05/06_user_interface/chat_helpers.py: streaming an answer into the page
piece by piece, and loading the model once at start-up with a message for the
page (not a traceback) when it cannot be loaded.
"""

import asyncio


# Copied from ch05/06_user_interface/chat_helpers.py::decode_stream
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


# Copied from ch05/06_user_interface/chat_helpers.py::send_text
async def send_text(text):
    """Show `text` (Markdown) as a new message of the app in the chat page."""
    import chainlit as cl  # see stream_reply

    await cl.Message(content=text).send()


# Copied from ch05/06_user_interface/chat_helpers.py::stream_reply
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


# Copied from ch05/06_user_interface/chat_helpers.py::ModelAtStartup
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
