"""Chat with Qwen3 in the browser: a conversation that remembers its earlier turns.

    pip install -r requirements-extra.txt
    chainlit run qwen3-chat-interface-multiturn.py     # then open http://localhost:8000

The conversation so far (a system message, then the user's and the model's
turns) is written in Qwen3's chat format (ChatML) once, by
`build_prompt_from_history`, and encoded as it is: the tokenizer does not wrap
it a second time (the book repository's app wraps the whole history again as
one user message). The model's earlier answers enter the history without
their <think> blocks, as Qwen recommends. A conversation longer than the
context keeps its most recent tokens. Settings: see qwen3_chat.py.
"""

import re

import chainlit
from previous_chapters import ModelAtStartup, decode_stream, stream_reply
from qwen3_chat import REASONING, answer_token_ids, greeting, load_chat_model

MODEL_AND_TOKENIZER = ModelAtStartup(load_chat_model)
SYSTEM_PROMPT = "You are a helpful assistant."


def build_prompt_from_history(history, add_assistant_header=True, add_thinking=REASONING):
    """The conversation `history` ([{"role", "content"}, ...]) in Qwen3's chat format."""
    prompt = "".join(f"<|im_start|>{turn['role']}\n{turn['content']}<|im_end|>\n"
                     for turn in history)
    if add_assistant_header:
        prompt += "<|im_start|>assistant\n"
        if not add_thinking:
            prompt += "<think>\n\n</think>\n\n"
    return prompt


def without_thinking(answer):
    """The answer without its <think>...</think> block, for the history."""
    return re.sub(r"<think>.*?</think>", "", answer, flags=re.DOTALL).strip()


@chainlit.on_chat_start
async def on_start():
    chainlit.user_session.set("history", [{"role": "system", "content": SYSTEM_PROMPT}])
    await MODEL_AND_TOKENIZER.greet(greeting(MODEL_AND_TOKENIZER,
                                             " It remembers this conversation."))


@chainlit.on_message
async def main(message: chainlit.Message):
    if await MODEL_AND_TOKENIZER.explain_if_missing():
        return
    model, tokenizer = MODEL_AND_TOKENIZER.model
    history = chainlit.user_session.get("history")
    history.append({"role": "user", "content": message.content})
    # The history is already in the chat format: encode it without wrapping it again.
    prompt_ids = tokenizer.encode(build_prompt_from_history(history), chat_wrapped=False)
    token_ids = answer_token_ids(model, tokenizer, prompt_ids,
                                 stop_ids={tokenizer.eos_token_id, tokenizer.pad_token_id})
    answer = await stream_reply(decode_stream(token_ids, tokenizer))
    history.append({"role": "assistant", "content": without_thinking(answer)})
