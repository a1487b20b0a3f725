# Copied from ch04/04_gqa/gpt_with_kv_mha.py
"""The baseline: GPT with a KV cache and chapter 4's multi-head attention (MHA).

Every head has its own keys and values, so the cache holds, per layer and
token, 2 x emb_dim numbers. The other scripts of the chapter 4 bonus folders
04-08 change exactly one thing against this file and compare with it.

    python gpt_with_kv_mha.py --max_new_tokens 200

The same file sits in each of those folders (a test keeps the copies equal).
"""

import torch.nn as nn
from kv_gpt_skeleton import (KVGPTModel, add_common_arguments, append_tokens, attend,
                             check_divisible, hidden_mask, parse_common_arguments,
                             run_generation, split_heads)
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with a KV cache (the book's KV-cache signature).

    The cache `cache_k` / `cache_v` has the shape (batch, tokens, heads,
    head_dim). No mask buffer: the causal mask is built from absolute
    positions, so it fits any cache length.
    """

    def __init__(self, d_in, d_out, dropout, num_heads, qkv_bias=False):
        super().__init__()
        check_divisible(d_out, num_heads, "d_out", "num_heads")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("cache_k", None, persistent=False)
        self.register_buffer("cache_v", None, persistent=False)
        self.ptr_current_pos = 0

    def reset_cache(self):
        self.cache_k, self.cache_v = None, None
        self.ptr_current_pos = 0

    def forward(self, x, use_cache=False):
        return self.out_proj(self.context_vectors(x, use_cache))

    def context_vectors(self, x, use_cache=False):
        """The heads' attention outputs, merged to (batch, tokens, d_out), before `out_proj`."""
        batch_size, num_tokens, _ = x.shape
        queries = split_heads(self.W_query(x), self.num_heads)
        keys = split_heads(self.W_key(x), self.num_heads)
        values = split_heads(self.W_value(x), self.num_heads)
        start = self.ptr_current_pos if use_cache else 0
        if use_cache:
            self.cache_k = keys = append_tokens(self.cache_k, keys)
            self.cache_v = values = append_tokens(self.cache_v, values)
            self.ptr_current_pos += num_tokens
        hidden = hidden_mask(start, num_tokens, 0, keys.shape[1], device=x.device)
        context = attend(queries, keys, values, hidden, self.dropout)
        return context.reshape(batch_size, num_tokens, self.d_out)


class GPTModel(KVGPTModel):
    """GPT-2 with a KV cache and standard multi-head attention in every block.

    With the same seed it holds the same weights as chapter 4's `GPTModel`.
    """

    def make_attention(self, cfg, layer_idx):
        return MultiHeadAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                  dropout=cfg["drop_rate"], num_heads=cfg["n_heads"],
                                  qkv_bias=cfg["qkv_bias"])


def parse_args(argv=None):
    """The command line as plain values: `run_generation`'s settings."""
    parser = ScriptArgumentParser(description="Run GPT with standard multi-head attention.")
    add_common_arguments(parser)
    _, settings = parse_common_arguments(parser, argv)
    return settings


def main(argv=None):
    settings = parse_args(argv)
    run_generation(GPTModel, {}, **settings)


if __name__ == "__main__":
    main()
