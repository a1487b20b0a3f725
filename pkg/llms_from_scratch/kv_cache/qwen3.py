"""Qwen3 with a KV cache (llms_from_scratch.kv_cache.qwen3), for `kv_cache.generate`.

Copied from ch05/11_qwen3/qwen3_kvcache.py (the code of
standalone-qwen3-plus-kvcache.ipynb): the attention, the block and the model
gain `start_pos` and `cache`, and `Qwen3Model` follows the package's cache
protocol (`model(ids, cache=KVCache)` continues at `current_pos`,
`reset_kv_cache()` starts over, `cfg`). Same parameters as `qwen3.Qwen3Model`,
so state dicts load both ways; dense and mixture-of-experts configurations.
Everything else is re-exported from `llms_from_scratch.qwen3`, including
`QWEN3_CONFIG_30B_A3B` (which the book's package leaves out here).
"""

import torch

from ..qwen3 import GroupedQueryAttention as PlainGroupedQueryAttention
from ..qwen3 import Qwen3Model as PlainQwen3Model
from ..qwen3 import TransformerBlock as PlainTransformerBlock
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
    apply_rope,
    causal_mask,
    check_context_length,
    compute_rope_params,
    download_from_huggingface,
    download_from_huggingface_from_snapshots,
    load_weights_into_qwen,
)
from .utils import KVCache

__all__ = [
    "QWEN3_CONFIG_1_7B", "QWEN3_CONFIG_4B", "QWEN3_CONFIG_8B", "QWEN3_CONFIG_14B",
    "QWEN3_CONFIG_30B_A3B", "QWEN3_CONFIG_32B", "QWEN_CONFIG_06_B", "FeedForward", "KVCache",
    "GroupedQueryAttention", "MoEFeedForward", "Qwen3Model", "Qwen3Tokenizer", "RMSNorm",
    "TransformerBlock", "apply_rope", "compute_rope_params", "download_from_huggingface",
    "download_from_huggingface_from_snapshots", "load_weights_into_qwen",
]


# Copied from ch05/11_qwen3/qwen3_kvcache.py::GroupedQueryAttention
class GroupedQueryAttention(PlainGroupedQueryAttention):
    """The attention of qwen3.py, continuing after `start_pos` cached tokens.

    `cache` holds the keys and values (already rotated) of the earlier tokens,
    or None; the new tokens' keys and values are appended, and the result is
    returned as the next cache.
    """

    def forward(self, x, mask, cos, sin, start_pos=0, cache=None):
        queries, keys, values = self.project(x, cos, sin, offset=start_pos)
        if cache is not None:
            keys = torch.cat([cache[0], keys], dim=2)
            values = torch.cat([cache[1], values], dim=2)
        return self.attend(queries, keys, values, mask), (keys, values)


# Copied from ch05/11_qwen3/qwen3_kvcache.py::TransformerBlock
class TransformerBlock(PlainTransformerBlock):
    """The block of qwen3.py, passing the cache through its attention."""

    attention_class = GroupedQueryAttention

    def forward(self, x, mask, cos, sin, start_pos=0, cache=None):
        attended, next_cache = self.att(self.norm1(x), mask, cos, sin, start_pos, cache)
        x = x + attended
        return x + self.ff(self.norm2(x)), next_cache


# Copied from ch05/11_qwen3/qwen3_kvcache.py::Qwen3Model
class Qwen3Model(PlainQwen3Model):
    """Qwen3 with a KV cache: `model(ids, cache=cache)` continues after the cached tokens.

    `current_pos` counts the tokens the cache holds; `reset_kv_cache()` sets
    it back to 0 for a new prompt (with a new or reset KVCache). Without a
    cache, `model(ids)` is qwen3.py's model.
    """

    block_class = TransformerBlock

    def __init__(self, cfg):
        super().__init__(cfg)
        self.current_pos = 0

    def reset_kv_cache(self):
        self.current_pos = 0

    def forward(self, in_idx, cache=None):
        num_tokens = in_idx.shape[1]
        start_pos = self.current_pos if cache is not None else 0
        check_context_length(start_pos + num_tokens, self.cfg["context_length"])
        x = self.tok_emb(in_idx)
        mask = causal_mask(num_tokens, start_pos, x.device)
        for layer, block in enumerate(self.trf_blocks):
            layer_cache = cache.get(layer) if cache is not None else None
            x, next_cache = block(x, mask, self.cos, self.sin, start_pos, layer_cache)
            if cache is not None:
                cache.update(layer, next_cache)
        if cache is not None:
            self.current_pos = start_pos + num_tokens
        return self.out_head(self.final_norm(x))
