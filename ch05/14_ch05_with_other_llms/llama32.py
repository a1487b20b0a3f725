"""Llama 3.2's architecture, from ch05/07_gpt_to_llama, for training from scratch.

Copies (kept identical by tools/copy_forward.py): the model `Llama3Model`, its
1B configuration and the tokenizer for Meta's `original/tokenizer.model`.
ch05/07_gpt_to_llama/standalone-llama32.ipynb explains each part.
"""

from pathlib import Path

import tiktoken
import torch
import torch.nn as nn
import torch.nn.functional as F
from tiktoken.load import load_tiktoken_bpe


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::RMSNorm
class RMSNorm(nn.Module):
    """Scale each vector to unit root mean square, then by a learned weight."""

    def __init__(self, emb_dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x):
        x32 = x.float()  # the mean of squares in float32, also for bfloat16 inputs
        mean_square = x32.pow(2).mean(dim=-1, keepdim=True)
        normed = x32 * torch.rsqrt(mean_square + self.eps)
        return (normed * self.weight).to(x.dtype)


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::SiLU
class SiLU(nn.Module):
    """SiLU (swish): x * sigmoid(x)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::SwiGLUFeedForward
class SwiGLUFeedForward(nn.Module):
    """Llama's gated feed-forward network: fc3(SiLU(fc1(x)) * fc2(x)), no biases."""

    def __init__(self, cfg):
        super().__init__()
        emb_dim, hidden_dim, dtype = cfg["emb_dim"], cfg["hidden_dim"], cfg["dtype"]
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)  # gate
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)  # up
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False, dtype=dtype)  # down
        self.silu = SiLU()

    def forward(self, x):
        return self.fc3(self.silu(self.fc1(x)) * self.fc2(x))


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::precompute_rope_params
def precompute_rope_params(head_dim, theta_base=10_000, context_length=4096, freq_config=None):
    """cos and sin of every position's rotation angles, each (context_length, head_dim).

    `freq_config` (Llama 3.1 and later) slows down the low frequencies, so that
    positions beyond the original training context still get angles like those
    the model has seen: a dict with "factor", "low_freq_factor",
    "high_freq_factor" and "original_context_length".
    """
    if head_dim % 2 != 0:
        raise ValueError(f"head_dim must be even to form pairs, got {head_dim}")
    # One frequency per pair: base^(-2i / head_dim) for i = 0, 1, ..., head_dim/2 - 1.
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / (theta_base ** exponents)

    if freq_config is not None:
        original_context = freq_config["original_context_length"]
        low, high = freq_config["low_freq_factor"], freq_config["high_freq_factor"]
        wavelength = 2 * torch.pi / inv_freq  # positions per full turn of each pair
        # Short wavelengths (< original_context / high) stay; long ones
        # (> original_context / low) are divided by `factor`; in between, a
        # smooth mix of the two, weighted by where the wavelength lies.
        smooth = (original_context / wavelength - low) / (high - low)
        mixed = (1 - smooth) * inv_freq / freq_config["factor"] + smooth * inv_freq
        inv_freq = torch.where(wavelength < original_context / high, inv_freq,
                               torch.where(wavelength > original_context / low,
                                           inv_freq / freq_config["factor"], mixed))

    positions = torch.arange(context_length, dtype=torch.float32)
    angles = positions[:, None] * inv_freq[None, :]  # (context_length, head_dim / 2)
    # Element i and element i + head_dim/2 form a pair, so both get the same angle.
    angles = torch.cat([angles, angles], dim=1)
    return torch.cos(angles), torch.sin(angles)


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::compute_rope
def compute_rope(x, cos, sin):
    """Rotate queries or keys x (batch, heads, tokens, head_dim) by their positions' angles.

    Row t of `cos`/`sin` is used for token t; to continue at a later position p,
    pass `cos[p:]` and `sin[p:]`.
    """
    num_tokens, head_dim = x.shape[-2], x.shape[-1]
    first_half, second_half = x[..., : head_dim // 2], x[..., head_dim // 2:]
    rotated_half = torch.cat([-second_half, first_half], dim=-1)
    cos = cos[:num_tokens].to(x.dtype)  # (tokens, head_dim), broadcast over batch and heads
    sin = sin[:num_tokens].to(x.dtype)
    return x * cos + rotated_half * sin


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::GroupedQueryAttention
class GroupedQueryAttention(nn.Module):
    """Causal attention in which groups of query heads share a key/value head.

    `num_heads` query heads, `num_kv_groups` key and value heads; each key/value
    head serves num_heads // num_kv_groups query heads. Queries and keys are
    rotated with RoPE. With `use_cache=True` the new tokens' keys and values are
    appended to a cache and the new queries attend to everything cached so far.
    """

    def __init__(self, d_in, d_out, num_heads, num_kv_groups, head_dim=None, dtype=None):
        super().__init__()
        if num_heads % num_kv_groups != 0:
            raise ValueError(f"num_heads ({num_heads}) must be divisible by "
                             f"num_kv_groups ({num_kv_groups})")
        if head_dim is None:
            if d_out % num_heads != 0:
                raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
            head_dim = d_out // num_heads
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.head_dim = head_dim
        self.W_query = nn.Linear(d_in, num_heads * head_dim, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(num_heads * head_dim, d_out, bias=False, dtype=dtype)
        self.reset_cache()

    def reset_cache(self):
        # Plain attributes, not buffers: the cache belongs to one generation,
        # it must not end up in the state dict.
        self.cache_k = None
        self.cache_v = None
        self.num_cached = 0

    def forward(self, x, cos, sin, use_cache=False):
        batch_size, num_tokens, _ = x.shape
        queries = self._split_heads(self.W_query(x), self.num_heads)
        keys = self._split_heads(self.W_key(x), self.num_kv_groups)
        values = self._split_heads(self.W_value(x), self.num_kv_groups)

        start = self.num_cached if use_cache else 0  # position of the first new token
        queries = compute_rope(queries, cos[start:], sin[start:])
        keys = compute_rope(keys, cos[start:], sin[start:])
        if use_cache:
            keys, values = self._append_to_cache(keys, values)

        # Each key/value head serves `group_size` consecutive query heads.
        keys = keys.repeat_interleave(self.group_size, dim=1)
        values = values.repeat_interleave(self.group_size, dim=1)
        # The query at position start + i may see keys 0 .. start + i. A single
        # new token is the latest one and sees every key: no mask needed.
        mask = None
        if num_tokens > 1:
            mask = torch.ones(num_tokens, keys.shape[2], dtype=torch.bool,
                              device=x.device).tril(diagonal=start)
        context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
        context = context.transpose(1, 2).reshape(batch_size, num_tokens, -1)
        return self.out_proj(context)

    def _split_heads(self, x, num_heads):
        """(batch, tokens, num_heads * head_dim) -> (batch, num_heads, tokens, head_dim)."""
        batch_size, num_tokens, _ = x.shape
        return x.view(batch_size, num_tokens, num_heads, self.head_dim).transpose(1, 2)

    def _append_to_cache(self, keys, values):
        """Store the new keys and values after the cached ones; return all of them.

        The storage doubles when it is full, so most steps copy only the new
        token's keys and values (torch.cat would copy the whole cache each step).
        """
        end = self.num_cached + keys.shape[2]
        if self.cache_k is None or end > self.cache_k.shape[2]:
            capacity = max(end, 2 * self.num_cached)
            grown_k = keys.new_empty(keys.shape[:2] + (capacity, self.head_dim))
            grown_v = torch.empty_like(grown_k)
            if self.cache_k is not None:
                grown_k[:, :, : self.num_cached] = self.cache_k[:, :, : self.num_cached]
                grown_v[:, :, : self.num_cached] = self.cache_v[:, :, : self.num_cached]
            self.cache_k, self.cache_v = grown_k, grown_v
        self.cache_k[:, :, self.num_cached:end] = keys
        self.cache_v[:, :, self.num_cached:end] = values
        self.num_cached = end
        return self.cache_k[:, :, :end], self.cache_v[:, :, :end]


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::Llama3Block
class Llama3Block(nn.Module):
    """Pre-norm transformer block: grouped-query attention and SwiGLU, around RMSNorm."""

    def __init__(self, cfg):
        super().__init__()
        self.att = GroupedQueryAttention(
            cfg["emb_dim"], cfg["emb_dim"], cfg["n_heads"], cfg["n_kv_groups"],
            head_dim=cfg.get("head_dim"), dtype=cfg["dtype"],
        )
        self.ff = SwiGLUFeedForward(cfg)
        self.norm1 = RMSNorm(cfg["emb_dim"])
        self.norm2 = RMSNorm(cfg["emb_dim"])

    def forward(self, x, cos, sin, use_cache=False):
        x = x + self.att(self.norm1(x), cos, sin, use_cache=use_cache)
        return x + self.ff(self.norm2(x))


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::Llama3Model
class Llama3Model(nn.Module):
    """Llama 3, 3.1 and 3.2: Llama 2 with grouped-query attention and scaled RoPE.

    `model(ids)` computes logits for a whole sequence. `model(ids, use_cache=True)`
    treats `ids` as the continuation of everything passed since the last
    `reset_cache()`: it computes only the new tokens, attending to the cached
    keys and values (see `generate_with_cache`).
    """

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        self.trf_blocks = nn.ModuleList([Llama3Block(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = RMSNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False,
                                  dtype=cfg["dtype"])
        head_dim = cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"]
        cos, sin = precompute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"],
                                          cfg.get("rope_freq"))
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def reset_cache(self):
        """Forget the cached keys and values, e.g. before a new prompt."""
        for block in self.trf_blocks:
            block.att.reset_cache()

    def cached_tokens(self):
        return self.trf_blocks[0].att.num_cached

    def forward(self, in_idx, use_cache=False):
        start = self.cached_tokens() if use_cache else 0
        end = start + in_idx.shape[1]
        if end > self.cos.shape[0]:
            raise ValueError(f"{end} tokens exceed the context length {self.cos.shape[0]}"
                             + (" (call reset_cache() to start over)" if use_cache else ""))
        x = self.tok_emb(in_idx)
        for block in self.trf_blocks:
            x = block(x, self.cos, self.sin, use_cache=use_cache)
        return self.out_head(self.final_norm(x))


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::LLAMA32_CONFIG_1B
LLAMA32_CONFIG_1B = {
    "vocab_size": 128_256,       # 128,000 BPE tokens + 256 special tokens
    "context_length": 131_072,   # 128k tokens (RoPE scaling, below)
    "emb_dim": 2048,
    "n_heads": 32,
    "n_layers": 16,
    "hidden_dim": 8192,
    "n_kv_groups": 8,            # 8 key/value heads, each shared by 4 query heads
    "rope_base": 500_000.0,
    "dtype": torch.bfloat16,
    "rope_freq": {               # Llama 3.1-style frequency scaling
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_context_length": 8192,
    },
}


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::LLAMA3_PATTERN
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::Llama3Tokenizer
class Llama3Tokenizer:
    """Llama 3's tokenizer: byte-level BPE (tiktoken) read from `tokenizer.model`.

    The file lists the 128,000 BPE tokens; 256 special tokens follow them, from
    <|begin_of_text|> (id 128,000) on. Special tokens are recognised in
    `encode` only when named in `allowed_special` (otherwise their text is
    ordinary text), so a user's message cannot inject them.
    """

    NAMED_SPECIAL_TOKENS = [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
        "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
        "<|python_tag|>",
    ]
    NUM_SPECIAL_TOKENS = 256

    def __init__(self, model_path):
        mergeable_ranks = load_tiktoken_bpe(str(model_path))
        reserved = [f"<|reserved_special_token_{i}|>"
                    for i in range(2, 2 + self.NUM_SPECIAL_TOKENS - len(self.NAMED_SPECIAL_TOKENS))]
        self.special_tokens = {
            token: len(mergeable_ranks) + i
            for i, token in enumerate(self.NAMED_SPECIAL_TOKENS + reserved)
        }
        self.model = tiktoken.Encoding(
            name=Path(model_path).name, pat_str=LLAMA3_PATTERN,
            mergeable_ranks=mergeable_ranks, special_tokens=self.special_tokens,
        )

    def encode(self, text, bos=False, eos=False, allowed_special=frozenset()):
        ids = self.model.encode(text, allowed_special=allowed_special, disallowed_special=())
        if bos:
            ids.insert(0, self.special_tokens["<|begin_of_text|>"])
        if eos:
            ids.append(self.special_tokens["<|end_of_text|>"])
        return ids

    def decode(self, ids):
        return self.model.decode(list(ids))


