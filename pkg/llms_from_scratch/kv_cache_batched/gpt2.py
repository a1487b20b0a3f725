"""Chapter 4's GPT model with a batched key-value cache and per-row positions.

Same layers, names and weights as chapter 4's `GPTModel` (state dicts load
both ways). `start_pos` (batch,) gives each row's position of its first new
token; left padding sits at negative positions, which no real token attends
to and which use position 0's embedding (their outputs are never used).
"""

import torch
import torch.nn as nn

from ..ch04 import FeedForward, LayerNorm


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention over cached and new keys, with per-row positions."""

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
        # Unused here (the mask depends on each row's positions), kept so that
        # chapter 4's state dicts load unchanged.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def _split_heads(self, x):
        batch_size, num_tokens, _ = x.shape
        return x.view(batch_size, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, start_pos, cache=None):
        batch_size, num_tokens, _ = x.shape
        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))
        if cache is not None:
            keys = torch.cat([cache[0], keys], dim=2)
            values = torch.cat([cache[1], values], dim=2)

        # Positions of the queries (the new tokens) and of all keys, per row.
        steps = torch.arange(keys.shape[2], device=x.device)
        key_pos = start_pos[:, None] + num_tokens - keys.shape[2] + steps  # (b, keys)
        query_pos = key_pos[:, -num_tokens:]                               # (b, queries)
        key_pos, query_pos = key_pos[:, None, :], query_pos[:, :, None]
        # A token sees the real tokens up to itself; a padding token sees only
        # itself (so its softmax is defined; nothing real ever reads it).
        allowed = (key_pos <= query_pos) & ((key_pos >= 0) | (key_pos == query_pos))

        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(~allowed[:, None], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)
        context = context.contiguous().view(batch_size, num_tokens, self.d_out)
        return self.out_proj(context), (keys, values)


class TransformerBlock(nn.Module):
    """Chapter 4's pre-norm block; passes positions and the attention's cache through."""

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

    def forward(self, x, start_pos, cache=None):
        attended, next_cache = self.att(self.norm1(x), start_pos, cache=cache)
        x = x + self.drop_shortcut(attended)
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x, next_cache


class GPTModel(nn.Module):
    """Chapter 4's GPT model for batches whose rows sit at different positions."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.current_pos = None

    def reset_kv_cache(self, batch_size, device=None):
        self.current_pos = torch.zeros(batch_size, dtype=torch.long, device=device)

    def forward(self, in_idx, cache=None, start_pos=None):
        batch_size, num_tokens = in_idx.shape
        if start_pos is None:
            start_pos = (self.current_pos if cache is not None and self.current_pos is not None
                         else torch.zeros(batch_size, dtype=torch.long, device=in_idx.device))
        if int(start_pos.max()) + num_tokens > self.cfg["context_length"]:
            raise ValueError(f"positions beyond the context length {self.cfg['context_length']}")
        positions = start_pos[:, None] + torch.arange(num_tokens, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions.clamp(min=0)))
        for layer_idx, block in enumerate(self.trf_blocks):
            layer_cache = cache.get_layer(layer_idx) if cache is not None else None
            x, next_cache = block(x, start_pos, cache=layer_cache)
            if cache is not None:
                cache.update_layer(layer_idx, next_cache)
        if cache is not None:
            self.current_pos = start_pos + num_tokens
        return self.out_head(self.final_norm(x))
