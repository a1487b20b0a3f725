"""The KV-cache GPT of `gpt_with_kv_cache.py`, extended for long generations.

`gpt_with_kv_cache.py` already preallocates its cache (one tensor per layer,
filled slot by slot, instead of growing it with `torch.cat`). This variant adds
the two other optimizations of the book's optimized file:

* **A sliding window (`kv_window_size`).** Each token attends only to itself
  and the `kv_window_size - 1` tokens before it, so the cache never needs to
  hold more than that many keys and values: memory and the work per step stop
  growing with the length of the text. Set it in the configuration,
  `GPTModel({**cfg, "kv_window_size": 256})`; without it the window is the
  whole context and the model computes exactly what the chapter's GPTModel
  computes. With a smaller window the model is a sliding-window-attention
  model, cached or not: `model(idx)` (no cache) applies the same window, so
  cached and uncached generation give the same ids.
* **Chunked prefill.** A long prompt goes through the model in pieces of at
  most `kv_window_size` tokens, so the cache buffer (2 x `kv_window_size`
  slots per layer, allocated once) always has room for the next piece.

How the window is kept: new keys and values are written after the cached
ones; when the buffer is full, the last `kv_window_size - 1` entries (all that
a new token can still see) move to the front, once every `kv_window_size`
steps or so, which costs on average about one entry's copy per step.

The names are the book's: `GPTModel(cfg)` with `forward(in_idx,
use_cache=False)` and `reset_kv_cache()`, and `generate_text_simple_cached`.
"""

import torch
from gpt_with_kv_cache import GPTModel as GPTModelKV
from gpt_with_kv_cache import MultiHeadAttentionKV, TransformerBlockKV
from previous_chapters import generate_text_simple


class MultiHeadAttentionWindowed(MultiHeadAttentionKV):
    """`MultiHeadAttentionKV` in which each token sees at most `kv_window_size` keys."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False,
                 fused_ops=False, kv_window_size=None):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias, fused_ops)
        self.kv_window_size = context_length if kv_window_size is None else kv_window_size
        if self.kv_window_size < 1:
            raise ValueError(f"kv_window_size must be at least 1, got {kv_window_size}")
        # As in the book, the window only bounds the cache: one wider than the
        # context changes nothing (no text is longer), so the buffer and the mask
        # use at most context_length.
        self.window = min(self.kv_window_size, context_length)
        self.tokens_seen = 0  # since the last reset: the position of the next token

    def reset_cache(self):
        super().reset_cache()
        self.tokens_seen = 0

    def cached_tokens(self):
        """Tokens passed since the last reset (the cache keeps only the last window)."""
        return self.tokens_seen

    def _keys_values_mask(self, keys, values, start, use_cache):
        num_new = keys.shape[2]
        key_start = 0
        if use_cache:
            keys, values, key_start = self._store_in_window(keys, values)
            self.tokens_seen += num_new
        # Query i sits at position start + i; key j at key_start + j. A query sees
        # the keys at its own position and the window - 1 before it.
        query_pos = torch.arange(start, start + num_new, device=keys.device).unsqueeze(1)
        key_pos = torch.arange(key_start, key_start + keys.shape[2], device=keys.device)
        hidden = (key_pos > query_pos) | (key_pos <= query_pos - self.window)
        return keys, values, hidden

    def _store_in_window(self, keys, values):
        """Append the new keys/values; return the buffer's filled part and its first position."""
        window, num_new = self.window, keys.shape[2]
        if num_new > window:
            raise ValueError(f"feed at most kv_window_size={window} tokens per cached call "
                             "(generate_text_simple_cached splits long prompts)")
        if self.cache_k is None:  # allocated once: the window plus room for one chunk
            batch_size, num_heads, _, head_dim = keys.shape
            shape = (batch_size, num_heads, 2 * window, head_dim)
            self.cache_k = keys.new_empty(shape)
            self.cache_v = values.new_empty(shape)
        if self.num_cached + num_new > self.cache_k.shape[2]:
            # Full: keep only what a new token can still see, at the front.
            keep = min(self.num_cached, window - 1)
            old = slice(self.num_cached - keep, self.num_cached)
            self.cache_k[:, :, :keep] = self.cache_k[:, :, old].clone()  # ranges may overlap
            self.cache_v[:, :, :keep] = self.cache_v[:, :, old].clone()
            self.num_cached = keep
        start, end = self.num_cached, self.num_cached + num_new
        self.cache_k[:, :, start:end] = keys
        self.cache_v[:, :, start:end] = values
        self.num_cached = end
        first_position = self.tokens_seen - start  # the position of the key in slot 0
        return self.cache_k[:, :, :end], self.cache_v[:, :, :end], first_position


class TransformerBlockWindowed(TransformerBlockKV):
    """The KV-cache transformer block with windowed attention."""

    attention_class = MultiHeadAttentionWindowed

    def make_attention(self, cfg, fused_ops):
        return super().make_attention(cfg, fused_ops, kv_window_size=cfg.get("kv_window_size"))


class GPTModel(GPTModelKV):
    """The book's optimized KV-cache GPTModel: `cfg["kv_window_size"]` sets the window.

    Same layers, names and random draws as the chapter's GPTModel, so the same
    seed gives the same weights and state dicts load either way.
    """

    block_class = TransformerBlockWindowed

    @property
    def kv_window_size(self):
        return self.trf_blocks[0].att.kv_window_size


def generate_text_simple_cached(model, idx, max_new_tokens, context_size=None, use_cache=True):
    """Greedy generation with the windowed cache; the same ids as `use_cache=False`.

    The prompt (its last `context_size` tokens) is prefilled in chunks of
    `kv_window_size`, then each step feeds one token. When the text outgrows
    `context_size`, `generate_text_simple` moves every token to a new position
    by cropping; cached keys belong to the old positions, so then we prefill
    the cropped window again, which gives the same ids as the uncached loop.
    """
    context_size = context_size or model.pos_emb.num_embeddings
    if not use_cache:
        return generate_text_simple(model, idx, max_new_tokens, context_size)
    with torch.no_grad():
        logits = prefill(model, idx[:, -context_size:])
        for step in range(max_new_tokens):
            idx_next = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            idx = torch.cat((idx, idx_next), dim=1)
            if step == max_new_tokens - 1:
                break  # the last token needs no forward pass
            if model.cached_tokens() + 1 > context_size:
                logits = prefill(model, idx[:, -context_size:])  # the window slides
            else:
                logits = model(idx_next, use_cache=True)
    model.reset_kv_cache()  # free the cached tensors
    return idx


def prefill(model, tokens):
    """Reset the cache and feed `tokens` in chunks of kv_window_size; the last chunk's logits."""
    model.reset_kv_cache()
    chunk = model.kv_window_size
    for begin in range(0, tokens.shape[1], chunk):
        logits = model(tokens[:, begin:begin + chunk], use_cache=True)
    return logits
