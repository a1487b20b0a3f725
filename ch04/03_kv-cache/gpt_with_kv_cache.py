"""The chapter 4 GPT model with a key-value (KV) cache for fast generation.

Why a cache helps: `generate_text_simple` feeds the whole sequence through the
model for every new token, although only the newest token is new. In a causal
model the keys and values of the earlier tokens never change (a token only
attends to itself and to tokens before it), so we can compute them once, keep
them, and afterwards run the model on one token per step.

The classes below are deliberate variants of the chapter's `MultiHeadAttention`,
`TransformerBlock` and `GPTModel`, under their own names. They create the same
layers in the same order with the same names, so

* `torch.manual_seed(123); GPTModel(cfg)` holds the same weights as
  `torch.manual_seed(123); GPTModel(cfg)`, and
* a state dict saved from one loads into the other.

Called without `use_cache=True`, `GPTModel` computes exactly what `GPTModel`
computes.

`GPTModel(cfg, fused_ops=True)` computes the same functions with PyTorch's
fused kernels: `F.layer_norm`, `F.gelu(approximate="tanh")` and
`F.scaled_dot_product_attention`. The chapter's classes spell each formula out
in several small tensor operations, which is clear; but when generating one
token at a time every operation handles a single vector, and the fixed cost of
launching it (not the arithmetic) is what we pay for. Same parameters, same
names, results equal up to floating-point rounding.

`store_weights_column_major(model)` goes one step further for one-token
generation on a CPU: it changes only the order in which the linear layers'
weights sit in memory (see its docstring).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from previous_chapters import GELU, FeedForward, LayerNorm, generate_text_simple


class CacheFullError(RuntimeError):
    """Raised when new tokens would not fit into the KV cache any more."""


def check_cache_room(cached, new, context_length):
    """Fail clearly when `cached` + `new` tokens exceed the supported context."""
    if cached + new > context_length:
        raise CacheFullError(
            f"{cached} cached + {new} new tokens exceed context_length={context_length}; "
            f"call reset_kv_cache() and continue from the last {context_length} tokens at most"
        )


class FusedLayerNorm(LayerNorm):
    """The chapter's LayerNorm (same `scale`, `shift`, eps), in one fused call."""

    def forward(self, x):
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class FusedGELU(GELU):
    """The chapter's tanh-approximated GELU, in one fused call."""

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


class MultiHeadAttentionKV(nn.Module):
    """Causal multi-head attention that can remember the keys and values it has seen.

    With `use_cache=True`, the keys and values of the new tokens are appended to
    `cache_k` / `cache_v`, and the new queries attend to everything cached so far.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False,
                 fused_ops=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) "
                "so that every head gets the same number of dimensions"
            )

        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.fused_ops = fused_ops

        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )
        # Plain attributes, not buffers: the cache is per-generation state,
        # it must not end up in the state dict.
        self.cache_k = None
        self.cache_v = None
        self.num_cached = 0

    def reset_cache(self):
        self.cache_k = None
        self.cache_v = None
        self.num_cached = 0

    def cached_tokens(self):
        return self.num_cached

    def _store_in_cache(self, keys, values):
        """Write the new keys/values after the cached ones; return all of them so far.

        The cache is allocated once, for the full context, on the first call after
        a reset. Appending with `torch.cat` instead would copy the whole cache at
        every step, work that grows with the length of the text.
        """
        if self.cache_k is None:
            batch_size, _, _, head_dim = keys.shape
            shape = (batch_size, self.num_heads, self.context_length, head_dim)
            self.cache_k = keys.new_empty(shape)
            self.cache_v = values.new_empty(shape)
        start, end = self.num_cached, self.num_cached + keys.shape[2]
        self.cache_k[:, :, start:end] = keys
        self.cache_v[:, :, start:end] = values
        self.num_cached = end
        # Views of the filled part: no copy.
        return self.cache_k[:, :, :end], self.cache_v[:, :, :end]

    def forward(self, x, use_cache=False):
        batch_size, num_new, _ = x.shape
        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))

        # Absolute position of the first new token: everything cached comes before it.
        start = self.cached_tokens() if use_cache else 0
        check_cache_room(start, num_new, self.context_length)
        keys, values, hidden = self._keys_values_mask(keys, values, start, use_cache)
        context = self._attend(queries, keys, values, hidden)
        context = context.transpose(1, 2).contiguous().view(batch_size, num_new, self.d_out)
        return self.out_proj(context)

    def _keys_values_mask(self, keys, values, start, use_cache):
        """The keys and values the new queries attend to, and which ones each may not see.

        Row i of the mask belongs to absolute position start + i, so it takes row
        start + i of the causal mask: it may see keys 0 .. start + i and nothing
        later. A single new token is the latest one and may see every key, so its
        mask row hides nothing and we return None instead (no masking work at all).
        """
        end = start + keys.shape[2]
        if use_cache:
            keys, values = self._store_in_cache(keys, values)
        if end - start == 1:
            return keys, values, None
        return keys, values, self.mask[start:end, :end].bool()  # slice first: convert less

    def _attend(self, queries, keys, values, hidden):
        """Causal attention of the queries over the keys; `hidden` is True where masked."""
        if self.fused_ops:  # the same attention in PyTorch's fused kernel
            # SDPA's boolean mask marks the keys a query MAY see, the opposite of ours.
            return F.scaled_dot_product_attention(
                queries, keys, values, attn_mask=None if hidden is None else ~hidden,
                dropout_p=self.dropout.p if self.training else 0.0,
            )
        # The chapter's computation: (batch, heads, new tokens, all tokens) scores.
        attn_scores = queries @ keys.transpose(2, 3)
        if hidden is not None:
            attn_scores.masked_fill_(hidden, -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.head_dim**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values

    def _split_heads(self, x):
        """(batch, tokens, d_out) -> (batch, heads, tokens, head_dim)."""
        batch_size, num_tokens, _ = x.shape
        x = x.view(batch_size, num_tokens, self.num_heads, self.head_dim)
        return x.transpose(1, 2)


class TransformerBlockKV(nn.Module):
    """The chapter's pre-norm transformer block, passing `use_cache` to attention."""

    def __init__(self, cfg, fused_ops=False):
        super().__init__()
        self.att = self.make_attention(cfg, fused_ops)
        self.ff = FeedForward(cfg)
        norm = FusedLayerNorm if fused_ops else LayerNorm
        if fused_ops:
            self.ff.layers[1] = FusedGELU()  # GELU has no parameters: the state dict is unchanged
        self.norm1 = norm(cfg["emb_dim"])
        self.norm2 = norm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    attention_class = MultiHeadAttentionKV  # a variant block (the optimized file) swaps it

    def make_attention(self, cfg, fused_ops, **extra_options):
        """The attention module, built from the configuration."""
        return self.attention_class(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
            fused_ops=fused_ops,
            **extra_options,
        )

    def forward(self, x, use_cache=False):
        x = x + self.drop_shortcut(self.att(self.norm1(x), use_cache=use_cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """GPT-2 whose forward pass can continue from the tokens it has already seen.

    `model(idx, use_cache=True)` treats `idx` as the continuation of everything
    passed since the last `reset_kv_cache()`: positions continue where the cache
    ends, and the new tokens attend to the cached ones. `fused_ops=True` computes
    LayerNorm, GELU and attention with PyTorch's fused functions (see the module
    docstring).
    """

    block_class = TransformerBlockKV  # a variant model (the optimized file) swaps the block

    def __init__(self, cfg, fused_ops=False):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        # A ModuleList instead of the chapter's Sequential, so that each block can
        # receive `use_cache`; the parameter names (trf_blocks.0. ...) stay the same.
        self.trf_blocks = nn.ModuleList(
            [self.block_class(cfg, fused_ops) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = (FusedLayerNorm if fused_ops else LayerNorm)(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def reset_kv_cache(self):
        """Forget all cached keys and values, e.g. before a new prompt."""
        for block in self.trf_blocks:
            block.att.reset_cache()

    def cached_tokens(self):
        """How many tokens the cache holds (every layer holds the same number)."""
        return self.trf_blocks[0].att.cached_tokens()

    def forward(self, in_idx, use_cache=False):
        _, seq_len = in_idx.shape
        start = self.cached_tokens() if use_cache else 0
        # Checked here already: the position embedding would fail first, less clearly.
        check_cache_room(start, seq_len, self.pos_emb.num_embeddings)
        positions = torch.arange(start, start + seq_len, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        for block in self.trf_blocks:
            x = block(x, use_cache=use_cache)
        x = self.final_norm(x)
        return self.out_head(x)


def store_weights_column_major(model):
    """Store every `nn.Linear` weight column by column in memory; keep shapes and values.

    Generating one token at a time, every weight matrix takes part in one
    matrix-vector product per step, and the time goes into reading the matrix
    from memory, not into arithmetic. How fast the CPU's matrix-vector kernel
    reads it depends on the order of the numbers in memory. `nn.Linear` keeps
    its (out, in) weight row by row and computes `x @ W.T`; on many CPUs that
    product is faster when W's *columns* are contiguous (the order Hugging
    Face's GPT-2 uses for its `Conv1D` layers). `column_major(W)` is the same
    (out, in) matrix stored in that order: names, shapes, state dicts and
    results stay as they were, and `load_state_dict` copies into the existing
    tensors, so loading weights later keeps the order. Whether it pays off
    depends on the machine: `matvec_layouts.py` times both orders.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
            module.weight = nn.Parameter(column_major(weight.detach()),
                                         requires_grad=weight.requires_grad)
    return model


def column_major(matrix):
    """The same matrix, its columns contiguous in memory: the transpose's rows."""
    return matrix.t().contiguous().t()


def generate_text_simple_cached(model, idx, max_new_tokens, context_size=None, use_cache=True):
    """Greedy generation like `generate_text_simple`, with the same output, but cached.

    The book's signature: `context_size` defaults to the model's context length,
    and `use_cache=False` runs the chapter's uncached loop for comparison.

    The prompt goes through the model once (filling the cache), then every step
    feeds only the token chosen last. When the sequence outgrows `context_size`,
    `generate_text_simple` keeps only the last `context_size` tokens, which moves
    every token to a new position; cached keys and values belong to the old
    positions, so from then on we reset the cache and recompute the window each
    step, exactly as the uncached function does.
    """
    context_size = context_size or model.pos_emb.num_embeddings
    if not use_cache:
        return generate_text_simple(model, idx, max_new_tokens, context_size)
    model.reset_kv_cache()  # a new prompt: nothing cached belongs to it
    new_tokens = idx[:, -context_size:]
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if model.cached_tokens() + new_tokens.shape[1] > context_size:
                model.reset_kv_cache()  # the window slides: recompute it from scratch
                new_tokens = idx[:, -context_size:]
            logits = model(new_tokens, use_cache=True)
            idx_next = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            idx = torch.cat((idx, idx_next), dim=1)
            new_tokens = idx_next
    model.reset_kv_cache()  # free the cached tensors
    return idx
