"""Qwen3 with a batched KV cache and per-row positions (llms_from_scratch.kv_cache_batched.qwen3).

For `kv_cache_batched.generate`: prompts of different lengths are padded on
the left, and `start_pos` (batch,) gives each row's position of its first new
token, negative where the row is padded. Each row's queries and keys are
rotated by that row's positions (padding uses position 0's rotation; no real
token attends to it), and the mask comes from the positions
(`kv_cache.utils.attention_allowed_mask`). Same parameters as
`qwen3.Qwen3Model`, so state dicts load both ways. Dense and
mixture-of-experts configurations both work (the book's package has dense
only): the feed-forward networks act on each token alone, so padding cannot
change a real token's result.
"""

import torch

from ..kv_cache.qwen3 import GroupedQueryAttention as CachedGroupedQueryAttention
from ..kv_cache.qwen3 import Qwen3Model as CachedQwen3Model
from ..kv_cache.qwen3 import TransformerBlock as CachedTransformerBlock
from ..kv_cache.utils import attention_allowed_mask
from ..qwen3 import (
    QWEN3_CONFIG_1_7B,
    QWEN3_CONFIG_4B,
    QWEN3_CONFIG_8B,
    QWEN3_CONFIG_14B,
    QWEN3_CONFIG_30B_A3B,
    QWEN3_CONFIG_32B,
    QWEN_CONFIG_06_B,
    FeedForward,
    MoEFeedForward,
    Qwen3Tokenizer,
    RMSNorm,
    check_context_length,
    compute_rope_params,
    download_from_huggingface,
    download_from_huggingface_from_snapshots,
    load_weights_into_qwen,
)

__all__ = [
    "QWEN3_CONFIG_1_7B", "QWEN3_CONFIG_4B", "QWEN3_CONFIG_8B", "QWEN3_CONFIG_14B",
    "QWEN3_CONFIG_30B_A3B", "QWEN3_CONFIG_32B", "QWEN_CONFIG_06_B", "FeedForward",
    "GroupedQueryAttention", "MoEFeedForward", "Qwen3Model", "Qwen3Tokenizer", "RMSNorm",
    "TransformerBlock", "apply_rope", "compute_rope_params", "download_from_huggingface",
    "download_from_huggingface_from_snapshots", "load_weights_into_qwen",
]


def apply_rope(x, cos, sin, offset):
    """Rotate x (batch, heads, tokens, head_dim); row b's first token is at position offset[b].

    Negative positions (left padding) get position 0's rotation: their
    outputs are never read, so any finite rotation does.
    """
    batch_size, _, num_tokens, head_dim = x.shape
    offset = torch.as_tensor(offset, device=x.device).reshape(-1, 1).expand(batch_size, 1)
    positions = (offset + torch.arange(num_tokens, device=x.device)).clamp(min=0)
    cos = cos[positions][:, None].to(x.dtype)  # (batch, 1, tokens, head_dim)
    sin = sin[positions][:, None].to(x.dtype)
    first, second = x[..., : head_dim // 2], x[..., head_dim // 2:]
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class GroupedQueryAttention(CachedGroupedQueryAttention):
    """The KV-cache attention, with each row rotated by its own positions.

    `forward(x, mask, cos, sin, start_pos, cache)` as in `kv_cache.qwen3`;
    `start_pos` is one position per row, and `mask` (True: must not look)
    has one (1, queries, keys) slice per row.
    """

    def project(self, x, cos, sin, offset=0):
        """Queries, keys and values (batch, heads, tokens, head_dim), rotated row by row."""
        batch_size, num_tokens, _ = x.shape

        def heads(projection, num):
            return projection(x).view(batch_size, num_tokens, num, self.head_dim).transpose(1, 2)

        queries = heads(self.W_query, self.num_heads)
        keys = heads(self.W_key, self.num_kv_groups)
        values = heads(self.W_value, self.num_kv_groups)
        if self.q_norm is not None:
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        return apply_rope(queries, cos, sin, offset), apply_rope(keys, cos, sin, offset), values


class TransformerBlock(CachedTransformerBlock):
    """The KV-cache block (dense or mixture of experts) with the per-row attention."""

    attention_class = GroupedQueryAttention


class Qwen3Model(CachedQwen3Model):
    """Qwen3 for batches whose rows sit at different positions.

    `reset_kv_cache(batch_size, device)` sets `current_pos` to zeros (one per
    row); `model(ids, cache=cache, start_pos=positions)` continues each row at
    its position with a `kv_cache_batched.utils.KVCache`. Without a cache, the
    whole (left-padded) sequence is computed, from `start_pos` (default 0).
    """

    block_class = TransformerBlock

    def __init__(self, cfg):
        super().__init__(cfg)
        self.current_pos = None  # set by reset_kv_cache(batch_size)

    def reset_kv_cache(self, batch_size, device=None):
        self.current_pos = torch.zeros(batch_size, dtype=torch.long, device=device)

    def forward(self, in_idx, cache=None, start_pos=None):
        batch_size, num_tokens = in_idx.shape
        if start_pos is None:
            start_pos = (self.current_pos if cache is not None and self.current_pos is not None
                         else torch.zeros(batch_size, dtype=torch.long, device=in_idx.device))
        check_context_length(int(start_pos.max()) + num_tokens, self.cfg["context_length"])
        first_layer = cache.get_layer(0) if cache is not None else None
        num_keys = num_tokens + (0 if first_layer is None else first_layer[0].shape[2])
        mask = ~attention_allowed_mask(start_pos, num_tokens, num_keys, in_idx.device)
        x = self.tok_emb(in_idx)
        for layer, block in enumerate(self.trf_blocks):
            layer_cache = cache.get_layer(layer) if cache is not None else None
            x, next_cache = block(x, mask, self.cos, self.sin, start_pos, layer_cache)
            if cache is not None:
                cache.update_layer(layer, next_cache)
        if cache is not None:
            self.current_pos = start_pos + num_tokens
        return self.out_head(self.final_norm(x))
