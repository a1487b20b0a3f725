"""GPT with a KV cache and grouped-query attention (GQA).

GQA keeps all query heads but lets a group of them share one key head and one
value head. With `n_kv_groups` groups the cache holds n_kv_groups instead of
n_heads key/value heads per layer and token: n_heads / n_kv_groups times less.

    python gpt_with_kv_gqa.py --max_new_tokens 200 --n_kv_groups 4
"""

import torch.nn as nn
from kv_gpt_skeleton import (KVGPTModel, add_common_arguments, append_tokens, attend,
                             check_divisible, hidden_mask, parse_common_arguments,
                             run_generation, split_heads)
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, positive_int


class GroupedQueryAttention(nn.Module):
    """Causal attention in which `group_size` query heads share each key/value head.

    The cache stores only the `num_kv_groups` key/value heads; they are repeated
    for their query heads after caching, so the repeat costs compute, not cache.
    With `num_kv_groups == num_heads` this is multi-head attention.
    """

    def __init__(self, d_in, d_out, dropout, num_heads, num_kv_groups, dtype=None,
                 qkv_bias=False):
        super().__init__()
        check_divisible(d_out, num_heads, "d_out", "num_heads")
        check_divisible(num_heads, num_kv_groups, "num_heads", "num_kv_groups")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        # The query projection is created first, as in chapter 4's attention.
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=qkv_bias, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=qkv_bias, dtype=dtype)
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.out_proj = nn.Linear(d_out, d_out, bias=False, dtype=dtype)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("cache_k", None, persistent=False)
        self.register_buffer("cache_v", None, persistent=False)
        self.ptr_current_pos = 0

    def reset_cache(self):
        self.cache_k, self.cache_v = None, None
        self.ptr_current_pos = 0

    def forward(self, x, use_cache=False):
        batch_size, num_tokens, _ = x.shape
        queries = split_heads(self.W_query(x), self.num_heads)
        keys = split_heads(self.W_key(x), self.num_kv_groups)
        values = split_heads(self.W_value(x), self.num_kv_groups)
        start = self.ptr_current_pos if use_cache else 0
        if use_cache:
            self.cache_k = keys = append_tokens(self.cache_k, keys)
            self.cache_v = values = append_tokens(self.cache_v, values)
            self.ptr_current_pos += num_tokens
        # Key/value head g serves query heads g * group_size ... (g + 1) * group_size - 1.
        keys = keys.repeat_interleave(self.group_size, dim=2)
        values = values.repeat_interleave(self.group_size, dim=2)
        hidden = hidden_mask(start, num_tokens, 0, keys.shape[1], device=x.device)
        context = attend(queries, keys, values, hidden, self.dropout)
        return self.out_proj(context.reshape(batch_size, num_tokens, self.d_out))


class GPTModel(KVGPTModel):
    """GPT-2 with a KV cache and grouped-query attention (`cfg["n_kv_groups"]`) in every block."""

    def make_attention(self, cfg, layer_idx):
        return GroupedQueryAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                     dropout=cfg["drop_rate"], num_heads=cfg["n_heads"],
                                     num_kv_groups=cfg["n_kv_groups"], qkv_bias=cfg["qkv_bias"])


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with grouped-query attention.")
    add_common_arguments(parser)
    parser.add_argument("--n-kv-groups", type=positive_int, default=2,
                        help="key/value heads, each shared by n_heads / n_kv_groups query heads")
    args, settings = parse_common_arguments(parser, argv)
    if args.n_heads % args.n_kv_groups != 0:
        parser.error(f"argument --n-kv-groups: {args.n_kv_groups} groups do not divide "
                     f"--n-heads {args.n_heads}")
    return {"n_kv_groups": args.n_kv_groups}, settings


def main(argv=None):
    extra_cfg, settings = parse_args(argv)
    run_generation(GPTModel, extra_cfg, **settings)


if __name__ == "__main__":
    main()
