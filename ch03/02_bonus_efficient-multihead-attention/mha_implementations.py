"""Causal multi-head attention, implemented in several equivalent ways.

Every class here computes the same function as chapter 3's `MultiHeadAttention`
(up to how the weights are stored) and has the same constructor:

    Cls(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)

`d_out` is the total output size, split evenly over `num_heads` heads. What
differs is *how* the work is done: a Python loop over heads, one big matrix
multiplication per projection, one fused projection for q, k and v, einsum,
PyTorch's fused attention kernels, PyTorch's own `nn.MultiheadAttention`, and
FlexAttention. `IMPLEMENTATIONS` lists them for the benchmark and the tests.

The classes carry the book's names (Ch03_MHA_Wrapper, Ch03_MHA,
MultiHeadAttentionCombinedQKV, MHAEinsum, MHAPyTorchScaledDotProduct,
MHAPyTorchSDPAWithoutFlash, MHAPyTorchClass, MHAPyTorchFlexAttention).
Their home is the notebook `mha-implementations.ipynb`, which shows and
explains each one; the definitions here are byte-identical copies, kept so by
`tools/copy_forward.py`.
"""

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

try:  # FlexAttention arrived in PyTorch 2.5
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    create_block_mask = flex_attention = None

# Without torch.compile, flex_attention warns on every new process that it runs
# an unfused reference implementation. We say so in the README and the
# benchmark table instead of printing the long warning each time.
warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")


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


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::check_head_split  # noqa: E501
def check_head_split(d_out, num_heads):
    """Every head must get the same number of dimensions."""
    if d_out % num_heads != 0:
        raise ValueError(
            f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) "
            "so that every head gets the same number of dimensions"
        )


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::check_input_length  # noqa: E501
def check_input_length(num_tokens, context_length):
    """Fail early and clearly on inputs longer than the module was built for."""
    if num_tokens > context_length:
        raise ValueError(
            f"input has {num_tokens} tokens but the attention module supports at "
            f"most context_length={context_length}; crop the input first"
        )


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::causal_mask_bool  # noqa: E501
def causal_mask_bool(context_length):
    """True above the diagonal: the (query, key) pairs where the key is in the future."""
    return torch.ones(context_length, context_length, dtype=torch.bool).triu(diagonal=1)


# The book's names for chapter 3's two classes. Ch03_MHA_Wrapper is the
# chapter's wrapper unchanged: its d_out is the size of *one* head, so
# Ch03_MHA_Wrapper(d_in=768, d_out=768 // 12, ..., num_heads=12) returns 768
# features, as Ch03_MHA(d_in=768, d_out=768, ..., num_heads=12) does.
# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::Ch03_MHA_Wrapper  # noqa: E501
class Ch03_MHA_Wrapper(MultiHeadAttentionWrapper):
    """Chapter 3's MultiHeadAttentionWrapper under the book's name (nothing changed).

    A `class` statement, not an assignment, so tools that collect a notebook's
    `def` and `class` statements (as the book repository's helper does) find it.
    """


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::Ch03_MHA
class Ch03_MHA(MultiHeadAttention):
    """Chapter 3's MultiHeadAttention under the book's name (nothing changed)."""


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAChapterWrapper  # noqa: E501
class MHAChapterWrapper(MultiHeadAttentionWrapper):
    """Chapter 3's wrapper (one CausalAttention per head, run in a loop).

    The chapter's wrapper (Ch03_MHA_Wrapper) gives each head `d_out` features;
    here `d_out` is the total, as for every other class, so each head gets
    d_out // num_heads. The benchmark and the tests build every class alike.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        check_head_split(d_out, num_heads)
        super().__init__(d_in, d_out // num_heads, context_length, dropout, num_heads,
                         qkv_bias)


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAFusedQKVBase
class MHAFusedQKVBase(nn.Module):
    """Shared parts of the fused-projection classes below.

    One `nn.Linear(d_in, 3 * d_out)` computes queries, keys and values in a
    single matrix multiplication instead of three. Its output is laid out as
    [queries | keys | values], each split into heads. Subclasses only decide
    how the attention itself is computed (`_attend`).
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        check_head_split(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.dropout_p = dropout
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        check_input_length(num_tokens, self.context_length)

        qkv = self.qkv(x).view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        # -> (3, batch, heads, tokens, head_dim), then one tensor each for q, k, v
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4).unbind(0)

        context = self._attend(queries, keys, values)  # (batch, heads, tokens, head_dim)
        context = context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out)
        return self.out_proj(context)

    def _attend(self, queries, keys, values):
        raise NotImplementedError


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MultiHeadAttentionCombinedQKV  # noqa: E501
class MultiHeadAttentionCombinedQKV(MHAFusedQKVBase):
    """Fused q/k/v projection, attention written out as in chapter 3."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # persistent=False: the mask is rebuilt from context_length, no need to save it
        self.register_buffer("mask", causal_mask_bool(context_length), persistent=False)

    def _attend(self, queries, keys, values):
        num_tokens = queries.shape[2]
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.head_dim**0.5, dim=-1)
        return self.dropout(attn_weights) @ values


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchScaledDotProduct  # noqa: E501
class MHAPyTorchScaledDotProduct(MHAFusedQKVBase):
    """Fused projection + `F.scaled_dot_product_attention`, kernel chosen by PyTorch.

    SDPA does scaling, causal masking, softmax, dropout and the product with
    the values in one call, and picks the fastest kernel it has for the
    device, dtype and shapes (flash attention, memory-efficient attention,
    or a plain "math" fallback). `is_causal=True` means no mask tensor at all.
    """

    # None: let PyTorch choose. Subclasses restrict the choice.
    sdpa_backends = None

    def _attend(self, queries, keys, values):
        # SDPA applies dropout whenever dropout_p > 0, so switch it off in eval mode
        dropout_p = self.dropout_p if self.training else 0.0
        if self.sdpa_backends is None:
            return F.scaled_dot_product_attention(
                queries, keys, values, dropout_p=dropout_p, is_causal=True
            )
        with sdpa_kernel(self.sdpa_backends):
            return F.scaled_dot_product_attention(
                queries, keys, values, dropout_p=dropout_p, is_causal=True
            )


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchSDPAFlashOnly  # noqa: E501
class MHAPyTorchSDPAFlashOnly(MHAPyTorchScaledDotProduct):
    """SDPA restricted to the flash-attention kernel (errors where there is none)."""

    sdpa_backends = [SDPBackend.FLASH_ATTENTION]


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchSDPAWithoutFlash  # noqa: E501
class MHAPyTorchSDPAWithoutFlash(MHAPyTorchScaledDotProduct):
    """SDPA without the flash kernel: restricted to the unfused "math" kernel.

    The same call as MHAPyTorchScaledDotProduct; it shows how much of SDPA's
    speed comes from its fused kernels rather than from the single call.
    """

    sdpa_backends = [SDPBackend.MATH]


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAEinsum
class MHAEinsum(nn.Module):
    """Projections and attention written as `torch.einsum` index expressions.

    Letters: b batch, t/s tokens (query/key position), h heads, k head_dim,
    i input features, o output features. As in the book, the query, key and
    value weights are plain (d_in, d_out) matrices, so a projection is
    x @ W_query; `nn.Linear` stores the transpose, (d_out, d_in). They are
    initialised like `nn.Linear`'s weights all the same.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        check_head_split(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Parameter(torch.empty(d_in, d_out))
        self.W_key = nn.Parameter(torch.empty(d_in, d_out))
        self.W_value = nn.Parameter(torch.empty(d_in, d_out))
        if qkv_bias:
            self.b_query = nn.Parameter(torch.empty(d_out))
            self.b_key = nn.Parameter(torch.empty(d_out))
            self.b_value = nn.Parameter(torch.empty(d_out))
        else:
            self.b_query = self.b_key = self.b_value = None
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask_bool(context_length), persistent=False)
        self._init_like_linear()

    def _init_like_linear(self):
        """nn.Linear's default initialisation (uniform, scaled by 1/sqrt(d_in)).

        kaiming_uniform_ reads the fan-in from dimension 1, which is d_in for
        nn.Linear's (d_out, d_in) layout; in our (d_in, d_out) layout d_in is
        dimension 0, hence mode="fan_out".
        """
        for name in ("query", "key", "value"):
            weight = getattr(self, f"W_{name}")
            nn.init.kaiming_uniform_(weight, a=5**0.5, mode="fan_out")
            bias = getattr(self, f"b_{name}")
            if bias is not None:
                bound = 1 / weight.shape[0]**0.5
                nn.init.uniform_(bias, -bound, bound)

    def _project(self, x, weight, bias):
        """(b, t, i) -> (b, t, h, k): project and split into heads in one step."""
        projected = torch.einsum("bti,io->bto", x, weight)
        if bias is not None:
            projected = projected + bias
        batch_size, num_tokens, _ = x.shape
        return projected.view(batch_size, num_tokens, self.num_heads, self.head_dim)

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        check_input_length(num_tokens, self.context_length)
        queries = self._project(x, self.W_query, self.b_query)
        keys = self._project(x, self.W_key, self.b_key)
        values = self._project(x, self.W_value, self.b_value)

        attn_scores = torch.einsum("bthk,bshk->bhts", queries, keys)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / self.head_dim**0.5, dim=-1))

        context = torch.einsum("bhts,bshk->bthk", attn_weights, values)
        return self.out_proj(context.reshape(batch_size, num_tokens, self.d_out))


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchClass
class MHAPyTorchClass(nn.Module):
    """PyTorch's `nn.MultiheadAttention`, asked to also return attention weights.

    Two differences from the chapter's class: the inputs must already have
    `d_out` features (d_in == d_out), and `qkv_bias` also switches the output
    projection's bias (nn.MultiheadAttention has one `bias` flag for both).
    Returning the (head-averaged) weights (`need_weights=True`, PyTorch's
    default) forces an unfused computation.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False,
                 need_weights=True):
        super().__init__()
        self.need_weights = need_weights
        check_head_split(d_out, num_heads)
        if d_in != d_out:
            raise ValueError(
                f"nn.MultiheadAttention needs d_in == d_out (got {d_in} and {d_out})"
            )
        self.context_length = context_length
        self.attention = nn.MultiheadAttention(
            d_out, num_heads, dropout=dropout, bias=qkv_bias, batch_first=True
        )
        self.register_buffer("mask", causal_mask_bool(context_length), persistent=False)

    def forward(self, x):
        num_tokens = x.shape[1]
        check_input_length(num_tokens, self.context_length)
        context, _ = self.attention(
            x, x, x,
            attn_mask=self.mask[:num_tokens, :num_tokens],
            is_causal=True,  # a hint that attn_mask is causal: lets it use SDPA's causal path
            need_weights=self.need_weights,
        )
        return context


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchClassNoWeights  # noqa: E501
class MHAPyTorchClassNoWeights(MHAPyTorchClass):
    """`nn.MultiheadAttention` with need_weights=False, so it may use fused SDPA."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias,
                         need_weights=False)


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::MHAPyTorchFlexAttention  # noqa: E501
class MHAPyTorchFlexAttention(MHAFusedQKVBase):
    """Fused projection + FlexAttention (`torch.nn.attention.flex_attention`).

    FlexAttention takes the mask as a Python function of (batch, head, query
    position, key position) and, under `torch.compile`, generates a fused
    kernel that also skips fully masked blocks. Without compilation it runs
    an unfused reference implementation (correct, but slow). It has no
    attention dropout, so training with dropout > 0 raises an error.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        if flex_attention is None:
            raise RuntimeError(f"FlexAttention needs PyTorch >= 2.5 (have {torch.__version__})")
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self._block_masks = {}  # (tokens, device) -> BlockMask, built once each

    def _causal_block_mask(self, num_tokens, device):
        key = (num_tokens, str(device))
        if key not in self._block_masks:
            self._block_masks[key] = create_block_mask(
                _causal_mask_mod, B=None, H=None, Q_LEN=num_tokens, KV_LEN=num_tokens,
                device=device,
            )
        return self._block_masks[key]

    def _attend(self, queries, keys, values):
        if self.training and self.dropout_p > 0:
            raise RuntimeError("FlexAttention has no attention dropout; use dropout=0.0")
        block_mask = self._causal_block_mask(queries.shape[2], queries.device)
        return flex_attention(queries, keys, values, block_mask=block_mask)


# Copied from ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb::_causal_mask_mod  # noqa: E501
def _causal_mask_mod(batch, head, query_pos, key_pos):
    """FlexAttention mask: a query may see keys at its own position or earlier."""
    return query_pos >= key_pos


# Display name -> class, in the order of the benchmark table.
IMPLEMENTATIONS = {
    "Ch03 MultiHeadAttentionWrapper": MHAChapterWrapper,
    "Ch03 MultiHeadAttention": MultiHeadAttention,
    "Fused QKV": MultiHeadAttentionCombinedQKV,
    "Einsum": MHAEinsum,
    "SDPA (PyTorch picks kernel)": MHAPyTorchScaledDotProduct,
    "SDPA flash kernel": MHAPyTorchSDPAFlashOnly,
    "SDPA math kernel (no flash)": MHAPyTorchSDPAWithoutFlash,
    "nn.MultiheadAttention": MHAPyTorchClass,
    "nn.MultiheadAttention, no weights": MHAPyTorchClassNoWeights,
    "FlexAttention": MHAPyTorchFlexAttention,
}


def unavailable_reason(cls, device):
    """None if `cls` runs on `device`, else a short reason (e.g. no flash kernel).

    Tries one tiny forward pass: kernel availability depends on the platform,
    the PyTorch build and the GPU, and trying is the only reliable test.
    """
    try:
        module = cls(d_in=8, d_out=8, context_length=4, dropout=0.0, num_heads=2).to(device)
        with torch.no_grad():
            module(torch.zeros(1, 4, 8, device=device))
    except (RuntimeError, NotImplementedError) as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return None
