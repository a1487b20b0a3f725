"""Chapter 4's GPT model with a key-value cache.

The classes create the same layers under the same names as chapter 4's
(`torch.manual_seed(123)` gives the same weights, state dicts load both
ways), and without a cache they compute the same logits. With a `KVCache`,
each call handles only the new tokens: their keys and values are appended to
the cached ones and their queries attend to everything cached so far.
"""

import torch
import torch.nn as nn

from ..ch04 import GELU, FeedForward, LayerNorm  # noqa: F401  (this module's building blocks)
from .utils import attention_allowed_mask


class MultiHeadAttention(nn.Module):
    """Chapter 3's causal multi-head attention, able to continue from cached keys and values.

    `forward(x, start_pos, cache)` treats `x` as the tokens at positions
    start_pos, start_pos + 1, ...; `cache` holds the (keys, values) of the
    positions before them. Returns the output and the (keys, values) to cache.
    `start_pos` may also be a tensor with one position per row (the batched
    cache, `kv_cache_batched`): a row padded on the left starts at a negative
    position, and no real token attends to a negative position.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # Unused (the mask follows from the positions), kept so that chapter 4's
        # state dicts load unchanged.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def _split_heads(self, x):
        batch_size, num_tokens, _ = x.shape
        return x.view(batch_size, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, start_pos=0, cache=None):
        batch_size, num_tokens, _ = x.shape
        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))
        if cache is not None:
            keys = torch.cat([cache[0], keys], dim=2)
            values = torch.cat([cache[1], values], dim=2)

        attn_scores = queries @ keys.transpose(2, 3)
        allowed = attention_allowed_mask(start_pos, num_tokens, keys.shape[2], x.device)
        attn_scores.masked_fill_(~allowed, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)
        context = context.contiguous().view(batch_size, num_tokens, self.d_out)
        return self.out_proj(context), (keys, values)


class TransformerBlock(nn.Module):
    """Chapter 4's pre-norm block; passes the attention's cache in and out."""

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, start_pos=0, cache=None):
        attended, next_cache = self.att(self.norm1(x), start_pos=start_pos, cache=cache)
        x = x + self.drop_shortcut(attended)
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x, next_cache


class GPTModel(nn.Module):
    """Chapter 4's GPT model; `model(ids, cache=cache)` continues at `current_pos`."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.current_pos = 0

    def reset_kv_cache(self):
        self.current_pos = 0

    def forward(self, in_idx, cache=None):
        num_tokens = in_idx.shape[1]
        start = self.current_pos if cache is not None else 0
        if start + num_tokens > self.cfg["context_length"]:
            raise ValueError(f"{start + num_tokens} positions exceed the context length "
                             f"{self.cfg['context_length']}; call reset_kv_cache()")
        positions = torch.arange(start, start + num_tokens, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        for layer_idx, block in enumerate(self.trf_blocks):
            layer_cache = cache.get(layer_idx) if cache is not None else None
            x, next_cache = block(x, start_pos=start, cache=layer_cache)
            if cache is not None:
                cache.update(layer_idx, next_cache)
        if cache is not None:
            self.current_pos = start + num_tokens
        return self.out_head(self.final_norm(x))
