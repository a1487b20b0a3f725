"""Qwen3 with a KV cache: the code of standalone-qwen3-plus-kvcache.ipynb, as a module.

Only what the cache changes is new here: the attention, the block and the
model gain `start_pos` and `cache` (the book repository's signatures), and
generation feeds the model one new token per step. Everything else (the
configurations, the tokenizer, the weight loader, the feed-forward networks)
is imported from qwen3.py unchanged.
"""

import torch
from qwen3 import (  # noqa: F401 (re-exported for the notebooks and the chat apps)
    QWEN3_CONFIG_1_7B,
    QWEN3_CONFIG_4B,
    QWEN3_CONFIG_8B,
    QWEN3_CONFIG_14B,
    QWEN3_CONFIG_30B_A3B,
    QWEN3_CONFIG_32B,
    QWEN3_CONFIGS,
    QWEN_CONFIG_06_B,
    FeedForward,
    MoEFeedForward,
    Qwen3Tokenizer,
    RMSNorm,
    apply_rope,
    calc_model_memory_size,
    causal_mask,
    check_context_length,
    compute_rope_params,
    download_from_huggingface_from_snapshots,
    get_qwen_config,
    load_weights_into_qwen,
    qwen3_config_from_hf,
)
from qwen3 import GroupedQueryAttention as PlainGroupedQueryAttention
from qwen3 import Qwen3Model as PlainQwen3Model
from qwen3 import TransformerBlock as PlainTransformerBlock


class KVCache:
    """The keys and values of every layer for the tokens seen so far."""

    def __init__(self, n_layers):
        self.cache = [None] * n_layers

    def get(self, layer_idx):
        return self.cache[layer_idx]

    def update(self, layer_idx, value):
        self.cache[layer_idx] = value

    def get_all(self):
        return self.cache

    def reset(self):
        for i in range(len(self.cache)):
            self.cache[i] = None


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


class TransformerBlock(PlainTransformerBlock):
    """The block of qwen3.py, passing the cache through its attention."""

    attention_class = GroupedQueryAttention

    def forward(self, x, mask, cos, sin, start_pos=0, cache=None):
        attended, next_cache = self.att(self.norm1(x), mask, cos, sin, start_pos, cache)
        x = x + attended
        return x + self.ff(self.norm2(x)), next_cache


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


def generate_text_basic_stream(model, token_ids, max_new_tokens, eos_token_id=None,
                               context_size=None):
    """Yield the greedy next token (batch, 1) up to `max_new_tokens` times, with a KV cache.

    The prompt goes through the model once; after that each step feeds only
    the token chosen last, whose query attends to the cached keys and values.
    Stops early when every sequence produced `eos_token_id` (not yielded), or
    when the sequence fills `context_size` (default: the model's context length).
    """
    context_size = context_size or model.cfg["context_length"]
    check_context_length(token_ids.shape[1], context_size)
    model.eval()
    cache = KVCache(n_layers=model.cfg["n_layers"])
    model.reset_kv_cache()
    with torch.no_grad():
        logits = model(token_ids, cache=cache)
        for step in range(max_new_tokens):
            next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
            if eos_token_id is not None and bool((next_token == eos_token_id).all()):
                break
            yield next_token
            if step + 1 == max_new_tokens or model.current_pos == context_size:
                break
            logits = model(next_token, cache=cache)
