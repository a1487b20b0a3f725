"""Llama 3.2 (and 3, 3.1): the model, its tokenizer and chat format, and weight loading.

Copied from ch05/07_gpt_to_llama (homes: converting-llama2-to-llama3.ipynb and
standalone-llama32.ipynb; the model code as in standalone_llama32.py);
`tools/copy_forward.py` keeps every definition identical to its home.

The chapter's names follow the book's notebooks. The book's package calls some
of them differently; those names work here too: `TransformerBlock` (the same
class as `Llama3Block`), `FeedForward` (`SwiGLUFeedForward`), `apply_rope`
(`compute_rope`), `compute_rope_params` (`precompute_rope_params` with a
`dtype`), and `assign(left, right, tensor_name)`.
Unlike the book's package, the attention builds its causal mask itself
(`forward(x, cos, sin, use_cache=False)`), `Llama3Model` caches keys and
values when called with `use_cache=True`, and `load_weights_into_llama(model,
params)` reads Hugging Face-format weights without a separate config.

`GroupedQueryAttentionFast`, `TransformerBlockFast` and `Llama3ModelFast` live
here only: the same model (same parameter names, so state dicts load both
ways) with PyTorch's causal scaled-dot-product attention instead of an
explicit mask, for fast training and full-sequence forward passes.
"""

from pathlib import Path

import tiktoken
import torch
import torch.nn as nn
import torch.nn.functional as F
from tiktoken.load import load_tiktoken_bpe

from .ch05 import generate


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


# Copied from ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb::LLAMA32_CONFIG_3B
LLAMA32_CONFIG_3B = {**LLAMA32_CONFIG_1B, "emb_dim": 3072, "n_heads": 24, "n_layers": 28}


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::hf_to_our_name
def hf_to_our_name(name):
    """Our parameter name for a Hugging Face Llama parameter name."""
    renames = {
        "model.embed_tokens.": "tok_emb.", "model.norm.": "final_norm.",
        "lm_head.": "out_head.", "model.layers.": "trf_blocks.",
        "self_attn.q_proj.": "att.W_query.", "self_attn.k_proj.": "att.W_key.",
        "self_attn.v_proj.": "att.W_value.", "self_attn.o_proj.": "att.out_proj.",
        "mlp.gate_proj.": "ff.fc1.", "mlp.up_proj.": "ff.fc2.", "mlp.down_proj.": "ff.fc3.",
        "input_layernorm.": "norm1.", "post_attention_layernorm.": "norm2.",
    }
    for theirs, ours in renames.items():
        name = name.replace(theirs, ours)
    return name


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::meta_to_our_name
def meta_to_our_name(name):
    """Our parameter name for a name in Meta's original checkpoint (consolidated.00.pth)."""
    if name.startswith("norm."):
        return "final_" + name
    renames = {
        "tok_embeddings.": "tok_emb.", "output.": "out_head.", "layers.": "trf_blocks.",
        "attention.wq.": "att.W_query.", "attention.wk.": "att.W_key.",
        "attention.wv.": "att.W_value.", "attention.wo.": "att.out_proj.",
        "feed_forward.w1.": "ff.fc1.", "feed_forward.w3.": "ff.fc2.",
        "feed_forward.w2.": "ff.fc3.", "attention_norm.": "norm1.", "ffn_norm.": "norm2.",
    }
    for theirs, ours in renames.items():
        name = name.replace(theirs, ours)
    return name


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::meta_rope_rows_to_ours
def meta_rope_rows_to_ours(weight, num_heads):
    """Reorder a query or key weight's rows from Meta's RoPE pairing to rotate-half.

    Meta's code rotates neighbouring elements (0, 1), (2, 3), ... of each head;
    our compute_rope rotates element i together with element i + head_dim / 2.
    So within each head the even rows come first, then the odd ones (the
    reordering Hugging Face's conversion script applies).
    """
    out_dim, in_dim = weight.shape
    head_dim = out_dim // num_heads
    return (weight.reshape(num_heads, head_dim // 2, 2, in_dim)
            .transpose(1, 2).reshape(out_dim, in_dim))


# Copied from ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb::load_weights_into_llama
def load_weights_into_llama(model, param_config, params):
    """Copy a Llama checkpoint `params` into our Llama2Model or Llama3Model, in place.

    Two layouts are accepted: Hugging Face's (the `-hf` repositories'
    safetensors: model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight,
    ...) and Meta's original (consolidated.00.pth: tok_embeddings.weight,
    layers.N.attention.wq.weight, ...), whose query and key rows are reordered
    for our RoPE with the head counts of `param_config`. Without an output
    head in the checkpoint (tied, as in Llama 3.2), the head shares the token
    embedding's weight.
    """
    meta_layout = "tok_embeddings.weight" in params
    rename = meta_to_our_name if meta_layout else hf_to_our_name
    heads = {"att.W_query.weight": param_config["n_heads"],
             "att.W_key.weight": param_config.get("n_kv_groups") or param_config["n_heads"]}
    ours = dict(model.named_parameters())
    loaded = set()
    for name, tensor in params.items():
        if name.endswith(("rotary_emb.inv_freq", "rope.freqs")):
            continue  # some checkpoints store RoPE frequencies; we compute them
        target = rename(name)
        if target not in ours:
            raise KeyError(f"checkpoint entry {name} has no place in the model (as {target})")
        if ours[target].shape != tensor.shape:
            raise ValueError(f"shape mismatch for {name}: the model has "
                             f"{tuple(ours[target].shape)}, the checkpoint {tuple(tensor.shape)}")
        kind = target.split(".", 2)[-1]  # trf_blocks.N.<kind>
        if meta_layout and kind in heads:
            tensor = meta_rope_rows_to_ours(tensor, heads[kind])
        with torch.no_grad():
            ours[target].copy_(tensor)
        loaded.add(target)
    if "out_head.weight" not in loaded:
        model.out_head.weight = model.tok_emb.weight  # tied: one matrix for both
        loaded.add("out_head.weight")
    missing = sorted(set(ours) - loaded)
    if missing:
        raise KeyError(f"the checkpoint has no values for {missing[:5]} ({len(missing)} in all)")
    return model


# Copied from ch05/07_gpt_to_llama/standalone-llama32.ipynb::generate_with_cache
def generate_with_cache(model, idx, max_new_tokens, temperature=0.0, top_k=None, eos_id=None):
    """Chapter 5's `generate` with a KV cache: the same tokens, far less work.

    `generate` calls the model on the whole sequence at every step. Here the
    model is called through `cached_step`, which passes on only the tokens the
    cache has not seen yet: the whole prompt once, then the one token chosen
    last, whose query attends to the cached keys and values of everything
    before it. Everything else (greedy choice, top-k, temperature, stopping at
    `eos_id`) is chapter 5's code unchanged.
    """
    def cached_step(ids):
        return model(ids[:, model.cached_tokens():], use_cache=True)

    model.reset_cache()  # a new prompt: nothing cached belongs to it
    try:
        # No cropping to a window: the cached positions must stay where they are.
        return generate(cached_step, idx, max_new_tokens, context_size=model.cos.shape[0],
                        temperature=temperature, top_k=top_k, eos_id=eos_id)
    finally:
        model.reset_cache()  # free the cache's memory


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


# Copied from ch05/07_gpt_to_llama/standalone-llama32.ipynb::ChatFormat
class ChatFormat:
    """Llama 3's chat format, as token ids.

    Each message: <|start_header_id|>, the role, <|end_header_id|>, two
    newlines, the text, <|eot_id|>. A prompt is <|begin_of_text|>, the
    messages, and an open assistant header; the model writes the answer and
    ends it with <|eot_id|>.
    """

    def __init__(self, tokenizer, default_system=None):
        self.tokenizer = tokenizer
        self.default_system = default_system

    def encode_header(self, message):
        special = self.tokenizer.special_tokens
        return ([special["<|start_header_id|>"]]
                + self.tokenizer.encode(message["role"])
                + [special["<|end_header_id|>"]]
                + self.tokenizer.encode("\n\n"))

    def encode_message(self, message):
        return (self.encode_header(message)
                + self.tokenizer.encode(message["content"].strip())
                + [self.tokenizer.special_tokens["<|eot_id|>"]])

    def encode(self, text):
        """The prompt for one user message (after the system message, if any)."""
        messages = [{"role": "user", "content": text}]
        if self.default_system:
            messages.insert(0, {"role": "system", "content": self.default_system})
        ids = [self.tokenizer.special_tokens["<|begin_of_text|>"]]
        for message in messages:
            ids += self.encode_message(message)
        return ids + self.encode_header({"role": "assistant", "content": ""})

    def decode(self, ids):
        return self.tokenizer.decode(ids)


# The book package's names for the chapter's classes and functions.
TransformerBlock = Llama3Block
FeedForward = SwiGLUFeedForward
apply_rope = compute_rope


def compute_rope_params(head_dim, theta_base=10_000, context_length=4096, freq_config=None,
                        dtype=torch.float32):
    """The book package's name and signature for `precompute_rope_params`: (cos, sin) in `dtype`."""
    cos, sin = precompute_rope_params(head_dim, theta_base, context_length, freq_config)
    return cos.to(dtype), sin.to(dtype)


def assign(left, right, tensor_name="unknown"):
    """The book package's loading helper: `right` as a parameter, if it has `left`'s shape."""
    right = torch.as_tensor(right)
    if left.shape != right.shape:
        raise ValueError(f"Shape mismatch in tensor '{tensor_name}'. "
                         f"Left: {tuple(left.shape)}, Right: {tuple(right.shape)}")
    return torch.nn.Parameter(right.clone().detach())


def clean_text(text, header_end="assistant<|end_header_id|>\n\n"):
    """The assistant's answer in decoded chat text: everything after its header."""
    index = text.find(header_end)
    return text if index == -1 else text[index + len(header_end):].strip()


class GroupedQueryAttentionFast(nn.Module):
    """`GroupedQueryAttention` without a cache, through PyTorch's causal SDPA kernel.

    Same parameters under the same names; `is_causal=True` lets PyTorch pick a
    flash or memory-efficient kernel instead of applying an explicit mask.
    """

    def __init__(self, d_in, d_out, num_heads, num_kv_groups, head_dim=None, dtype=None):
        super().__init__()
        if num_heads % num_kv_groups != 0:
            raise ValueError(f"num_heads ({num_heads}) must be divisible by "
                             f"num_kv_groups ({num_kv_groups})")
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.head_dim = head_dim or d_out // num_heads
        self.W_query = nn.Linear(d_in, num_heads * self.head_dim, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(num_heads * self.head_dim, d_out, bias=False, dtype=dtype)

    def _split_heads(self, x, num_heads):
        batch_size, num_tokens, _ = x.shape
        return x.view(batch_size, num_tokens, num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, cos, sin):
        batch_size, num_tokens, _ = x.shape
        queries = compute_rope(self._split_heads(self.W_query(x), self.num_heads), cos, sin)
        keys = compute_rope(self._split_heads(self.W_key(x), self.num_kv_groups), cos, sin)
        values = self._split_heads(self.W_value(x), self.num_kv_groups)
        keys = keys.repeat_interleave(self.group_size, dim=1)
        values = values.repeat_interleave(self.group_size, dim=1)
        context = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
        return self.out_proj(context.transpose(1, 2).reshape(batch_size, num_tokens, -1))


class TransformerBlockFast(nn.Module):
    """`Llama3Block` with `GroupedQueryAttentionFast`."""

    def __init__(self, cfg):
        super().__init__()
        self.att = GroupedQueryAttentionFast(
            cfg["emb_dim"], cfg["emb_dim"], cfg["n_heads"], cfg["n_kv_groups"],
            head_dim=cfg.get("head_dim"), dtype=cfg["dtype"],
        )
        self.ff = SwiGLUFeedForward(cfg)
        self.norm1 = RMSNorm(cfg["emb_dim"])
        self.norm2 = RMSNorm(cfg["emb_dim"])

    def forward(self, x, cos, sin):
        x = x + self.att(self.norm1(x), cos, sin)
        return x + self.ff(self.norm2(x))


class Llama3ModelFast(nn.Module):
    """`Llama3Model` (same parameter names and logits) built from `TransformerBlockFast`."""

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        self.trf_blocks = nn.ModuleList(
            [TransformerBlockFast(cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = RMSNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False,
                                  dtype=cfg["dtype"])
        head_dim = cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"]
        cos, sin = precompute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"],
                                          cfg.get("rope_freq"))
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, in_idx):
        if in_idx.shape[1] > self.cos.shape[0]:
            raise ValueError(f"{in_idx.shape[1]} tokens exceed the context length "
                             f"{self.cos.shape[0]}")
        x = self.tok_emb(in_idx)
        for block in self.trf_blocks:
            x = block(x, self.cos, self.sin)
        return self.out_head(self.final_norm(x))
