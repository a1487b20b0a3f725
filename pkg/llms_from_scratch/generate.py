"""Helpers shared by the generation loops of the chapter and KV-cache modules."""


def trim_input_tensor(input_ids_tensor, context_len, max_new_tokens):
    """Keep only the last prompt tokens that leave room for `max_new_tokens` new ones.

    A cache of `context_len` positions must hold the prompt and every generated
    token, so a longer prompt loses its beginning (at least one token stays).
    """
    if max_new_tokens >= context_len:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) must be smaller than "
                         f"the context length ({context_len})")
    keep = max(1, context_len - max_new_tokens)
    return input_ids_tensor[:, -keep:]
