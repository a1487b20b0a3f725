"""Chat with Qwen3 in the browser: one question, one answer.

    pip install -r requirements-extra.txt
    chainlit run qwen3-chat-interface.py     # then open http://localhost:8000

Each message is answered on its own (no memory of earlier turns; the
multi-turn app, qwen3-chat-interface-multiturn.py, keeps the conversation).
The model is the from-scratch Qwen3 of the folder above with its KV cache,
loaded once at start-up with Qwen's weights from the Hugging Face hub; the
answer appears token by token. Settings: see qwen3_chat.py (QWEN3_MODEL,
QWEN3_REASONING, QWEN3_DEVICE, QWEN3_MAX_NEW_TOKENS, QWEN3_LOCAL_DIR).
"""

import chainlit
from previous_chapters import ModelAtStartup, decode_stream, stream_reply
from qwen3_chat import answer_token_ids, greeting, load_chat_model

# Copied from ch05/11_qwen3/qwen3-chat-interface/qwen3-chat-interface-multiturn.py::MODEL_AND_TOKENIZER  # noqa: E501
MODEL_AND_TOKENIZER = ModelAtStartup(load_chat_model)


@chainlit.on_chat_start
async def on_start():
    await MODEL_AND_TOKENIZER.greet(greeting(MODEL_AND_TOKENIZER))


@chainlit.on_message
async def main(message: chainlit.Message):
    if await MODEL_AND_TOKENIZER.explain_if_missing():
        return
    model, tokenizer = MODEL_AND_TOKENIZER.model
    prompt_ids = tokenizer.encode(message.content)  # wrapped as a user turn (chat models)
    token_ids = answer_token_ids(model, tokenizer, prompt_ids,
                                 stop_ids={tokenizer.eos_token_id, tokenizer.pad_token_id})
    await stream_reply(decode_stream(token_ids, tokenizer))
