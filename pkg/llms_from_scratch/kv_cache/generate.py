"""Greedy generation with a key-value cache: the prompt once, then one token per step.

`generate_text_simple` returns exactly the ids of chapter 4's `generate_text_simple`
(tested), computing each new token from the cached keys and values instead of
re-running the whole sequence.
"""

import torch

from ..ch04 import generate_text_simple as generate_text_simple_uncached
from ..generate import trim_input_tensor  # noqa: F401  (the book imports it from here)
from .utils import KVCache


def generate_text_simple(model, idx, max_new_tokens, context_size=None, use_cache=True):
    """`idx` (batch, tokens) extended by `max_new_tokens` greedily chosen token ids.

    With `use_cache=False` this is chapter 4's loop. With the cache, every
    position must fit into the model's context (`trim_input_tensor` shortens
    a long prompt), because cached positions cannot slide.
    """
    context_size = context_size or model.cfg["context_length"]
    if not use_cache:
        with torch.no_grad():
            return generate_text_simple_uncached(model, idx, max_new_tokens, context_size)
    new_ids = list(generate_text_simple_stream(model, idx, max_new_tokens,
                                               context_size=context_size))
    return torch.cat([idx, *new_ids], dim=1)


@torch.no_grad()
def generate_text_simple_stream(model, token_ids, max_new_tokens, eos_token_id=None,
                                context_size=None):
    """Yield each new (batch, 1) tensor of token ids as soon as it is chosen.

    Stops after `max_new_tokens`, or when every row's next token is
    `eos_token_id` (that token is not yielded).
    """
    context_size = context_size or model.cfg["context_length"]
    if token_ids.shape[1] + max_new_tokens > context_size:
        raise ValueError(
            f"{token_ids.shape[1]} prompt tokens + {max_new_tokens} new ones exceed the "
            f"context of {context_size} tokens; shorten the prompt with trim_input_tensor"
        )
    model.eval()
    cache = KVCache(n_layers=model.cfg["n_layers"])
    model.reset_kv_cache()
    new_tokens = token_ids  # the whole prompt first, then only the token chosen last
    for _ in range(max_new_tokens):
        logits = model(new_tokens, cache=cache)
        new_tokens = torch.argmax(logits[:, -1], dim=-1, keepdim=True)
        if eos_token_id is not None and bool((new_tokens == eos_token_id).all()):
            return
        yield new_tokens
