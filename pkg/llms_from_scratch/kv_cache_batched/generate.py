"""Greedy generation for a batch of prompts of different lengths, with a key-value cache.

Each row's new tokens are exactly those `generate_text_simple` of chapter 4
picks for that prompt alone (tested): padding sits on the left, at negative
positions that real tokens never attend to, and every row counts its own
positions from its first real token.
"""

import torch

from ..generate import trim_input_tensor  # noqa: F401  (the book imports it from here)
from .utils import KVCache


def left_pad(prompts, pad_token_id=0):
    """One (batch, longest) tensor of prompts (lists or 1-D tensors), padded on the left.

    Returns the tensor and each prompt's length, the `prompt_lengths` that
    `generate_text_simple` needs to tell padding from tokens.
    """
    lengths = torch.tensor([len(prompt) for prompt in prompts])
    if bool((lengths == 0).any()):
        raise ValueError("every prompt needs at least one token")
    batch = torch.full((len(prompts), int(lengths.max())), pad_token_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        batch[row, batch.shape[1] - len(prompt):] = torch.as_tensor(prompt, dtype=torch.long)
    return batch, lengths


def generate_text_simple(model, idx, max_new_tokens, context_size=None, use_cache=True,
                         prompt_lengths=None):
    """`idx` (batch, tokens), left-padded, extended by `max_new_tokens` greedy token ids.

    `prompt_lengths` (batch,) counts each row's real tokens (default: no
    padding). With `use_cache=False` every step re-runs the whole padded
    batch (the reference the cache must match).
    """
    if not use_cache:
        start_pos = _first_positions(model, idx, max_new_tokens, context_size, prompt_lengths)
        model.eval()
        with torch.no_grad():
            for _ in range(max_new_tokens):
                logits = model(idx, start_pos=start_pos)
                idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
        return idx
    new_ids = list(generate_text_simple_stream(model, idx, max_new_tokens,
                                               context_size=context_size,
                                               prompt_lengths=prompt_lengths))
    return torch.cat([idx, *new_ids], dim=1)


@torch.no_grad()
def generate_text_simple_stream(model, token_ids, max_new_tokens, eos_token_id=None,
                                context_size=None, prompt_lengths=None):
    """Yield each step's new (batch, 1) token ids, one per prompt, as soon as they are chosen.

    Stops after `max_new_tokens`, or when every row's next token is
    `eos_token_id` (that step is not yielded); rows that reached it earlier
    keep going, so cut each row at its first `eos_token_id`.
    """
    start_pos = _first_positions(model, token_ids, max_new_tokens, context_size,
                                 prompt_lengths)
    model.eval()
    cache = KVCache(n_layers=model.cfg["n_layers"], batch_size=token_ids.shape[0])
    model.reset_kv_cache(batch_size=token_ids.shape[0], device=token_ids.device)
    model.current_pos = start_pos
    new_tokens = token_ids  # the whole padded prompt first, then one token per row
    for _ in range(max_new_tokens):
        logits = model(new_tokens, cache=cache, start_pos=model.current_pos.clone())
        new_tokens = logits[:, -1].argmax(dim=-1, keepdim=True)
        if eos_token_id is not None and bool((new_tokens == eos_token_id).all()):
            return
        yield new_tokens


def _first_positions(model, idx, max_new_tokens, context_size, prompt_lengths):
    """Each row's position of its first column: negative where the row is padded."""
    batch_size, num_tokens = idx.shape
    context_size = context_size or model.cfg["context_length"]
    if num_tokens + max_new_tokens > context_size:
        raise ValueError(
            f"{num_tokens} prompt tokens + {max_new_tokens} new ones exceed the context of "
            f"{context_size} tokens; shorten the prompts with trim_input_tensor"
        )
    if prompt_lengths is None:
        prompt_lengths = torch.full((batch_size,), num_tokens)
    return prompt_lengths.to(idx.device) - num_tokens
