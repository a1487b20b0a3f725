"""Chapter 3: self-attention, causal attention and multi-head attention.

Copied from ch03/01_main-chapter-code/ch03.ipynb (the home); `tools/copy_forward.py`
keeps every definition identical to it. `PyTorchMultiHeadAttention` lives here
only: the same attention through `torch.nn.functional.scaled_dot_product_attention`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


# Copied from ch03/01_main-chapter-code/ch03.ipynb::SelfAttention_v1
class SelfAttention_v1(nn.Module):
    """Self-attention with trainable query, key and value matrices.

    The three matrices are plain `nn.Parameter`s of shape (d_in, d_out), so
    the projections are written out as matrix products `x @ W`.
    """

    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        queries = x @ self.W_query
        keys = x @ self.W_key
        values = x @ self.W_value

        attn_scores = queries @ keys.T  # (tokens, tokens)
        # Dividing by sqrt(d_out) keeps the scores from growing with the
        # dimension, so the softmax does not saturate and gradients stay useful.
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        return attn_weights @ values


# Copied from ch03/01_main-chapter-code/ch03.ipynb::SelfAttention_v2
class SelfAttention_v2(nn.Module):
    """The same computation as SelfAttention_v1, with `nn.Linear` projections.

    `nn.Linear` stores its weight as (d_out, d_in) and uses a better random
    initialisation than `torch.rand`, which helps training later on.
    """

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        return attn_weights @ values


# Copied from ch03/01_main-chapter-code/ch03.ipynb::CausalAttention
class CausalAttention(nn.Module):
    """Single-head self-attention in which a token sees only itself and earlier tokens.

    Works on batches of shape (batch, tokens, d_in). Future positions are hidden
    with -inf before the softmax, and dropout randomly drops attention weights
    during training.
    """

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # 1 above the diagonal marks "a future token": those scores get -inf.
        # A buffer travels with the module (.to(device), state_dict).
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x):
        _, num_tokens, _ = x.shape
        if num_tokens > self.context_length:
            raise ValueError(
                f"input has {num_tokens} tokens but the attention module supports at "
                f"most context_length={self.context_length}; crop the input first"
            )
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(1, 2)  # (batch, tokens, tokens)
        causal_mask = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(causal_mask, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values


# Copied from ch03/01_main-chapter-code/ch03.ipynb::MultiHeadAttentionWrapper
class MultiHeadAttentionWrapper(nn.Module):
    """Several independent CausalAttention heads whose outputs are concatenated.

    Each head has its own projections of size d_out, so the result has
    num_heads * d_out features. The heads run one after the other.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
             for _ in range(num_heads)]
        )

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


# Copied from ch03/01_main-chapter-code/ch03.ipynb::MultiHeadAttention
class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with one set of projection matrices.

    The query, key and value projections produce all heads at once; we then
    split the last dimension into (num_heads, head_dim) so every head attends
    independently, and merge the heads again before the output projection.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
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

        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # A buffer, not a parameter: it moves with .to(device) and is saved in
        # the state_dict, but the optimizer never changes it.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        if num_tokens > self.context_length:
            raise ValueError(
                f"input has {num_tokens} tokens but the attention module supports at "
                f"most context_length={self.context_length}; crop the input first"
            )

        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))

        # (batch, heads, tokens, tokens): how much each token attends to each other
        attn_scores = queries @ keys.transpose(2, 3)
        causal_mask = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(causal_mask, -torch.inf)

        attn_weights = torch.softmax(attn_scores / self.head_dim**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)
        context = context.contiguous().view(batch_size, num_tokens, self.d_out)
        return self.out_proj(context)

    def _split_heads(self, x):
        """(batch, tokens, d_out) -> (batch, heads, tokens, head_dim)."""
        batch_size, num_tokens, _ = x.shape
        x = x.view(batch_size, num_tokens, self.num_heads, self.head_dim)
        return x.transpose(1, 2)


# Copied from ch05/10_llm-training-speed/speed_ladder.py::PyTorchMultiHeadAttention
class PyTorchMultiHeadAttention(nn.Module):
    """`MultiHeadAttention` computed by PyTorch's fused scaled-dot-product attention.

    One linear layer `qkv` makes queries, keys and values together (its weight
    is W_query, W_key and W_value stacked), and `proj` is the output
    projection. `F.scaled_dot_product_attention(..., is_causal=True)` applies
    the causal mask, the 1/sqrt(head_dim) scaling, softmax and attention
    dropout in one call (a flash or memory-efficient kernel where one exists),
    so no mask buffer and no context length are needed.
    """

    def __init__(self, d_in, d_out, num_heads, dropout=0.0, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.d_out = d_out
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = dropout  # a probability: SDPA applies it only while training

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        qkv = self.qkv(x).view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, tokens, head_dim)
        context = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
        )
        context = context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out)
        return self.proj(context)
