"""Gated DeltaNet and gated attention (Qwen3-Next), and a GPT that mixes them 3:1.

Gated DeltaNet is a linear-attention layer: instead of caching every token's
key and value, each head keeps one fixed-size memory matrix S (head_dim x
head_dim) and, token by token,

    S <- exp(g_t) * S                      forget a little (the gate g_t <= 0)
    S <- S + beta_t * k_t (v_t - S^T k_t)^T  the delta rule: store v_t under key k_t,
                                           replacing what S returned for k_t
    o_t = S^T q_t                          read the memory with the query

so its "cache" stays the same size however long the text gets. Like Qwen3-Next,
`GPTModel` uses a regular (gated) attention layer in every
`full_attention_interval`-th block and Gated DeltaNet in the others (3:1 for 4).

    python gpt_with_kv_deltanet.py --max_new_tokens 200 --full_attention_interval 4

The recurrence above is `gated_delta_rule_recurrent`; `gated_delta_rule_chunked`
computes the same outputs a chunk of tokens at a time with matrix products,
which is how prompts are processed.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from gpt_with_kv_mha import MultiHeadAttention
from kv_gpt_skeleton import (KVGPTModel, add_common_arguments, check_divisible,
                             parse_common_arguments, run_generation, split_heads)
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, positive_int


def l2norm(x, dim=-1, eps=1e-6):
    """x scaled to unit length along `dim` (eps keeps a zero vector finite)."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True) + eps)


def gated_delta_rule_recurrent(q, k, v, g, beta, initial_state=None):
    """The gated delta rule, one token at a time.

    q, k: (batch, tokens, heads, d_k); v: (batch, tokens, heads, d_v); g (the log
    of the forget gate, <= 0) and beta (the write strength, in (0, 1)): (batch,
    tokens, heads). `initial_state`: (batch, heads, d_k, d_v) or None for zeros.
    Returns the outputs (batch, tokens, heads, d_v) and the final state.
    """
    batch_size, num_tokens, num_heads, d_k = k.shape
    state = (initial_state if initial_state is not None
             else v.new_zeros(batch_size, num_heads, d_k, v.shape[-1]))
    outputs = []
    for t in range(num_tokens):
        state = state * g[:, t].exp()[..., None, None]
        recalled = torch.einsum("bhk,bhkv->bhv", k[:, t], state)  # what S holds for k_t
        correction = beta[:, t, :, None] * (v[:, t] - recalled)
        state = state + k[:, t, :, :, None] * correction[:, :, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, dim=1), state


def gated_delta_rule_chunked(q, k, v, g, beta, initial_state=None, chunk_size=64):
    """The same outputs and final state as `gated_delta_rule_recurrent`, chunk by chunk.

    Within a chunk let G_t be the cumulative sum of g (so exp(G_t - G_s) is the
    decay from token s to token t) and u_t the correction written at token t.
    Unrolling the recurrence from the chunk's start state S0 gives

        u_t + beta_t sum_{s<t} exp(G_t - G_s) (k_t . k_s) u_s = beta_t (v_t - exp(G_t) S0^T k_t)
        o_t = exp(G_t) S0^T q_t + sum_{s<=t} exp(G_t - G_s) (q_t . k_s) u_s

    a unit lower-triangular system for all u of the chunk at once, then matrix
    products for the outputs and the next chunk's start state.
    """
    batch_size, num_tokens, num_heads, d_k = k.shape
    state = (initial_state if initial_state is not None
             else v.new_zeros(batch_size, num_heads, d_k, v.shape[-1]))
    # (batch, heads, tokens, ...) so that matrix products run over the tokens.
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    g, beta = g.transpose(1, 2), beta.transpose(1, 2)
    outputs = []
    for start in range(0, num_tokens, chunk_size):
        chunk = slice(start, start + chunk_size)
        q_c, k_c, v_c, beta_c = q[:, :, chunk], k[:, :, chunk], v[:, :, chunk], beta[:, :, chunk]
        G = g[:, :, chunk].cumsum(dim=-1)
        n = G.shape[-1]
        later = torch.ones(n, n, dtype=torch.bool, device=G.device).triu(1)  # s after t
        decay = (G[..., :, None] - G[..., None, :]).masked_fill(later, -torch.inf).exp()
        eye = torch.eye(n, dtype=decay.dtype, device=decay.device)
        # decay - eye keeps the pairs s < t only (decay is 1 on the diagonal).
        system = eye + beta_c[..., None] * (k_c @ k_c.transpose(-1, -2)) * (decay - eye)
        rhs = beta_c[..., None] * (v_c - G.exp()[..., None] * (k_c @ state))
        u = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
        outputs.append(G.exp()[..., None] * (q_c @ state)
                       + ((q_c @ k_c.transpose(-1, -2)) * decay) @ u)
        to_end = (G[..., -1:] - G).exp()  # decay from each token to the chunk's end
        state = (G[..., -1, None, None].exp() * state
                 + (k_c * to_end[..., None]).transpose(-1, -2) @ u)
    return torch.cat(outputs, dim=2).transpose(1, 2), state


class GatedDeltaNet(nn.Module):
    """A Gated DeltaNet layer (as in Qwen3-Next, without its short convolution).

    Queries and keys are scaled to unit length (queries then by 1/sqrt(head_dim)),
    beta = sigmoid(W_beta x) is one write strength per head and token, and the
    forget gate is g = -exp(A_log) * softplus(W_alpha x + dt_bias), per head
    and token. The output is RMS-normalized per head and gated with SiLU(W_gate x).
    With `use_cache=True` the layer continues from `cache_state`, the memory S
    of every head: (batch, heads, head_dim, head_dim), whatever the length.
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
        self.W_gate = nn.Linear(d_in, d_out, bias=False)
        self.W_beta = nn.Linear(d_in, num_heads, bias=False)
        self.W_alpha = nn.Linear(d_in, num_heads, bias=False)
        self.dt_bias = nn.Parameter(torch.ones(num_heads))
        self.A_log = nn.Parameter(torch.empty(num_heads).uniform_(0, 16).log())
        self.norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("cache_state", None, persistent=False)

    def reset_cache(self):
        self.cache_state = None

    def rule_inputs(self, x):
        """q, k, v, g and beta of the gated delta rule for the tokens x."""
        q = l2norm(split_heads(self.W_query(x), self.num_heads)) / self.head_dim**0.5
        k = l2norm(split_heads(self.W_key(x), self.num_heads))
        v = split_heads(self.W_value(x), self.num_heads)
        g = -self.A_log.exp() * F.softplus(self.W_alpha(x) + self.dt_bias)
        beta = torch.sigmoid(self.W_beta(x))
        return q, k, v, g, beta

    def forward(self, x, use_cache=False):
        batch_size, num_tokens, _ = x.shape
        # The rule runs in float32 at least (the triangular solve needs it); the
        # state is stored in the model's dtype, which is what a memory estimate counts.
        rule_dtype = torch.promote_types(x.dtype, torch.float32)
        inputs = [t.to(rule_dtype) for t in self.rule_inputs(x)]
        state = (self.cache_state.to(rule_dtype)
                 if use_cache and self.cache_state is not None else None)
        rule = gated_delta_rule_recurrent if num_tokens == 1 else gated_delta_rule_chunked
        out, state = rule(*inputs, initial_state=state)
        if use_cache:
            self.cache_state = state.to(x.dtype)
        gate = F.silu(split_heads(self.W_gate(x), self.num_heads))
        out = self.norm(out.to(x.dtype)) * gate
        return self.out_proj(self.dropout(out).reshape(batch_size, num_tokens, self.d_out))


class GatedMultiHeadAttention(MultiHeadAttention):
    """Multi-head attention whose output is gated per channel: context * sigmoid(W_gate x).

    The gate (Qwen3-Next's full-attention layers) lets a head switch its output
    off for a token, instead of being forced to attend somewhere.
    """

    def __init__(self, d_in, d_out, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, dropout, num_heads, qkv_bias)
        self.W_gate = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x, use_cache=False):
        gate = torch.sigmoid(self.W_gate(x))
        return self.out_proj(self.context_vectors(x, use_cache) * gate)


def is_full_attention_layer(layer_idx, full_attention_interval):
    """Every `full_attention_interval`-th block (the last of each group) uses attention."""
    return (layer_idx + 1) % full_attention_interval == 0


class GPTModel(KVGPTModel):
    """GPT-2 with a KV cache, Gated DeltaNet in most blocks, gated attention in every
    `cfg["full_attention_interval"]`-th block (4: three DeltaNet blocks, then attention)."""

    def make_attention(self, cfg, layer_idx):
        layer_class = (GatedMultiHeadAttention
                       if is_full_attention_layer(layer_idx, cfg["full_attention_interval"])
                       else GatedDeltaNet)
        return layer_class(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], dropout=cfg["drop_rate"],
                           num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with Gated DeltaNet and gated attention "
                                              "(a Qwen3-Next-style hybrid).")
    add_common_arguments(parser)
    parser.add_argument("--full-attention-interval", type=positive_int, default=4,
                        help="every N-th block uses attention, the others Gated DeltaNet "
                             "(1: attention only)")
    args, settings = parse_common_arguments(parser, argv)
    return {"full_attention_interval": args.full_attention_interval}, settings


def main(argv=None):
    extra_cfg, settings = parse_args(argv)
    run_generation(GPTModel, extra_cfg, **settings)


if __name__ == "__main__":
    main()
