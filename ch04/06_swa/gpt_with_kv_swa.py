"""GPT with a KV cache and sliding-window attention (SWA) in most layers.

In a sliding-window layer a token attends only to itself and the
`sliding_window_size - 1` tokens before it, so the layer's cache never needs
more than the last `sliding_window_size` tokens. Like Gemma 3, the model mixes
them with regular (global) layers: with `--sliding_window_stride K`, K sliding
layers are followed by one regular layer (K = 0: all regular; K < 0: all sliding).

    python gpt_with_kv_swa.py --max_new_tokens 200 --sliding_window_size 1024 \
        --sliding_window_stride 5
"""

from gpt_with_kv_mha import MultiHeadAttention
from kv_gpt_skeleton import (KVGPTModel, add_common_arguments, append_tokens, attend,
                             hidden_mask, parse_common_arguments, run_generation, split_heads)
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, positive_int


class MultiHeadAttentionWithSWA(MultiHeadAttention):
    """Multi-head attention in which each token sees only the last `sliding_window_size` tokens.

    The window includes the token itself: with size W, the token at position i
    sees positions i - W + 1 ... i. `sliding_window_size=None` is regular causal
    attention. With the cache, the new tokens attend to the trimmed cache plus
    themselves (a prefill of T tokens sees up to W + T - 1 keys), then the cache
    keeps only the last W tokens, all that later tokens can see.
    """

    def __init__(self, d_in, d_out, dropout, num_heads, qkv_bias=False, sliding_window_size=None):
        super().__init__(d_in, d_out, dropout, num_heads, qkv_bias)
        if sliding_window_size is not None and sliding_window_size < 1:
            raise ValueError(f"sliding_window_size must be at least 1, got {sliding_window_size}")
        self.sliding_window_size = sliding_window_size

    def context_vectors(self, x, use_cache=False):
        batch_size, num_tokens, _ = x.shape
        window = self.sliding_window_size
        queries = split_heads(self.W_query(x), self.num_heads)
        keys = split_heads(self.W_key(x), self.num_heads)
        values = split_heads(self.W_value(x), self.num_heads)
        start = self.ptr_current_pos if use_cache else 0
        if use_cache:
            keys = append_tokens(self.cache_k, keys)
            values = append_tokens(self.cache_v, values)
            self.ptr_current_pos += num_tokens
            self.cache_k, self.cache_v = keep_last(keys, window), keep_last(values, window)
        # The keys end with the newest token; a trimmed cache starts after position 0.
        key_start = start + num_tokens - keys.shape[1]
        hidden = hidden_mask(start, num_tokens, key_start, keys.shape[1], window, x.device)
        context = attend(queries, keys, values, hidden, self.dropout)
        return context.reshape(batch_size, num_tokens, self.d_out)


def keep_last(cache, window):
    """The last `window` tokens of the cache, in their own memory (None: all of it).

    A slice alone would keep the whole old tensor alive behind it.
    """
    if window is None or cache.shape[1] <= window:
        return cache
    return cache[:, -window:].clone()


def is_sliding_window_layer(layer_idx, sliding_window_stride):
    """The book's schedule: K = stride sliding layers, then one regular layer, repeated.

    K == 0 means no sliding layers, K < 0 only sliding layers.
    """
    if sliding_window_stride == 0:
        return False
    if sliding_window_stride < 0:
        return True
    return layer_idx % (sliding_window_stride + 1) < sliding_window_stride


class GPTModel(KVGPTModel):
    """GPT-2 with a KV cache, sliding-window attention in the layers the schedule picks.

    Reads `cfg["sliding_window_stride"]` and `cfg["sliding_window_size"]`. The
    parameter names equal chapter 4's `GPTModel`'s (a window has no weights), so
    its state dicts load here.
    """

    def make_attention(self, cfg, layer_idx):
        sliding = is_sliding_window_layer(layer_idx, cfg["sliding_window_stride"])
        return MultiHeadAttentionWithSWA(
            d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], dropout=cfg["drop_rate"],
            num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"],
            sliding_window_size=cfg.get("sliding_window_size") if sliding else None)


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with sliding-window attention.")
    add_common_arguments(parser)
    parser.add_argument("--sliding-window-size", type=positive_int, default=1024,
                        help="tokens a sliding-window layer sees, itself included")
    parser.add_argument("--sliding-window-stride", type=int, default=2,
                        help="K sliding-window layers, then one regular layer "
                             "(0: all regular, negative: all sliding)")
    args, settings = parse_common_arguments(parser, argv)
    return ({"sliding_window_size": args.sliding_window_size,
             "sliding_window_stride": args.sliding_window_stride}, settings)


def main(argv=None):
    extra_cfg, settings = parse_args(argv)
    run_generation(GPTModel, extra_cfg, **settings)


if __name__ == "__main__":
    main()
