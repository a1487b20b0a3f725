"""Llama 3.2 for `kv_cache.generate`: the chapter's model under the package's cache protocol.

The chapter's `Llama3Model` (ch05/07_gpt_to_llama) already keeps each
attention layer's keys and values itself (`model(ids, use_cache=True)`). This
`Llama3Model` is that model, with the interface every model in `kv_cache`
shares: `model(ids, cache=cache)` continues at `current_pos`, and
`reset_kv_cache()` starts over. Same parameters, same logits.
"""

from .. import llama3 as _chapter
from ..llama3 import (
    LLAMA32_CONFIG_1B,
    LLAMA32_CONFIG_3B,
    ChatFormat,
    FeedForward,
    GroupedQueryAttention,
    GroupedQueryAttentionFast,
    Llama3ModelFast,
    Llama3Tokenizer,
    RMSNorm,
    TransformerBlock,
    TransformerBlockFast,
    apply_rope,
    clean_text,
    compute_rope_params,
    load_weights_into_llama,
)

__all__ = [
    "LLAMA32_CONFIG_1B", "LLAMA32_CONFIG_3B", "ChatFormat", "FeedForward",
    "GroupedQueryAttention", "GroupedQueryAttentionFast", "Llama3Model", "Llama3ModelFast",
    "Llama3Tokenizer", "RMSNorm", "TransformerBlock", "TransformerBlockFast", "apply_rope",
    "clean_text", "compute_rope_params", "load_weights_into_llama",
]


class Llama3Model(_chapter.Llama3Model):
    """The chapter's Llama 3 model, driven through a `KVCache` argument.

    The cache object only says "continue": the keys and values stay in the
    attention layers, where the chapter's model keeps them.
    """

    def __init__(self, cfg):
        super().__init__(cfg)
        self.cfg = cfg

    @property
    def current_pos(self):
        return self.cached_tokens()

    def reset_kv_cache(self):
        self.reset_cache()

    def forward(self, in_idx, cache=None):
        return super().forward(in_idx, use_cache=cache is not None)
