"""GPT with a KV cache and multi-head latent attention (MLA, from DeepSeek V2/V3).

MLA compresses each token into one small latent vector (`latent_dim` numbers)
and caches only that; every layer rebuilds the keys and values of all heads
from the cached latents with two up-projections. Per layer and token the cache
holds latent_dim numbers instead of MHA's 2 x emb_dim.

    python gpt_with_kv_mla.py --max_new_tokens 200 --latent_dim 192
"""

import torch.nn as nn
from kv_gpt_skeleton import (KVGPTModel, add_common_arguments, append_tokens, attend,
                             check_divisible, hidden_mask, parse_common_arguments,
                             run_generation, split_heads)
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, positive_int


class MultiHeadLatentAttention(nn.Module):
    """Causal attention whose keys and values come from a cached low-rank latent.

    W_DKV compresses a token to the latent c (down-projection), W_UK and W_UV
    expand c to the keys and values of all heads (up-projections). Keys are
    therefore W_UK(W_DKV(x)): MHA with a key matrix of rank at most latent_dim
    (the same for values). This simplified version leaves out DeepSeek's
    decoupled RoPE keys and its compressed queries.
    """

    def __init__(self, d_in, d_out, dropout, num_heads, qkv_bias=False, latent_dim=None):
        super().__init__()
        check_divisible(d_out, num_heads, "d_out", "num_heads")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.latent_dim = latent_dim if latent_dim is not None else max(16, d_out // 8)
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}")
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_DKV = nn.Linear(d_in, self.latent_dim, bias=qkv_bias)
        self.W_UK = nn.Linear(self.latent_dim, d_out, bias=qkv_bias)
        self.W_UV = nn.Linear(self.latent_dim, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("cache_c_kv", None, persistent=False)
        self.ptr_current_pos = 0

    def reset_cache(self):
        self.cache_c_kv = None
        self.ptr_current_pos = 0

    def forward(self, x, use_cache=False):
        batch_size, num_tokens, _ = x.shape
        queries = split_heads(self.W_query(x), self.num_heads)
        latent = self.W_DKV(x)  # (batch, tokens, latent_dim): all that is cached
        start = self.ptr_current_pos if use_cache else 0
        if use_cache:
            self.cache_c_kv = latent = append_tokens(self.cache_c_kv, latent)
            self.ptr_current_pos += num_tokens
        keys = split_heads(self.W_UK(latent), self.num_heads)
        values = split_heads(self.W_UV(latent), self.num_heads)
        hidden = hidden_mask(start, num_tokens, 0, keys.shape[1], device=x.device)
        context = attend(queries, keys, values, hidden, self.dropout)
        return self.out_proj(context.reshape(batch_size, num_tokens, self.d_out))


class GPTModel(KVGPTModel):
    """GPT-2 with a KV cache and multi-head latent attention in every block.

    Reads `cfg["latent_dim"]` (None or missing: the attention's default).
    """

    def make_attention(self, cfg, layer_idx):
        return MultiHeadLatentAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                        dropout=cfg["drop_rate"], num_heads=cfg["n_heads"],
                                        qkv_bias=cfg["qkv_bias"], latent_dim=cfg.get("latent_dim"))


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with multi-head latent attention.")
    add_common_arguments(parser)
    parser.add_argument("--latent-dim", type=positive_int, default=None,
                        help="cached numbers per token and layer (default: max(16, emb_dim // 8))")
    args, settings = parse_common_arguments(parser, argv)
    return {"latent_dim": args.latent_dim}, settings


def main(argv=None):
    extra_cfg, settings = parse_args(argv)
    run_generation(GPTModel, extra_cfg, **settings)


if __name__ == "__main__":
    main()
