"""Helpers shared by the generation loops of the chapter and KV-cache modules."""


# Copied from ch05/11_qwen3/qwen3-chat-interface/qwen3_chat.py::trim_input_tensor
def trim_input_tensor(input_ids_tensor, context_len, max_new_tokens):
    """Keep the last tokens of the prompt, leaving room for `max_new_tokens` new ones."""
    if max_new_tokens >= context_len:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) must be smaller than the "
                         f"context length ({context_len})")
    keep = max(1, context_len - max_new_tokens)
    return input_ids_tensor[:, -keep:]
