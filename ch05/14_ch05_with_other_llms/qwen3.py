"""Qwen3's architecture, from ch05/11_qwen3, for training from scratch.

Copies (kept identical by tools/copy_forward.py): the model `Qwen3Model` (with
the mixture-of-experts layer its block can choose), the 0.6B configuration and
the tokenizer for the hub's `tokenizer.json`. ch05/11_qwen3/standalone-qwen3.ipynb
explains each part.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


# Copied from ch05/11_qwen3/qwen3.py::FeedForward
class FeedForward(nn.Module):
    """SwiGLU: fc3(SiLU(fc1(x)) * fc2(x)), with no biases (Hugging Face: gate, up, down)."""

    def __init__(self, cfg):
        super().__init__()
        emb_dim, hidden_dim, dtype = cfg["emb_dim"], cfg["hidden_dim"], cfg["dtype"]
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False, dtype=dtype)

    def forward(self, x):
        return self.fc3(F.silu(self.fc1(x)) * self.fc2(x))


# Copied from ch04/07_moe/gpt_with_kv_moe.py::MoEFeedForward
class MoEFeedForward(nn.Module):
    """Top-k routed SwiGLU experts; counts how many tokens each expert receives.

    `tokens_per_expert` adds up the routing decisions of every forward call
    (reset with `reset_load()`): a router that favours few experts wastes the others.
    """

    def __init__(self, cfg):
        super().__init__()
        if not 1 <= cfg["num_experts_per_tok"] <= cfg["num_experts"]:
            raise ValueError(f"num_experts_per_tok ({cfg['num_experts_per_tok']}) must be "
                             f"between 1 and num_experts ({cfg['num_experts']})")
        self.num_experts_per_tok = cfg["num_experts_per_tok"]
        self.num_experts = cfg["num_experts"]
        self.emb_dim = cfg["emb_dim"]
        self.gate = nn.Linear(cfg["emb_dim"], cfg["num_experts"], bias=False)
        # Expert e is the SwiGLU layer fc3[e](silu(fc1[e](x)) * fc2[e](x)).
        self.fc1 = self._expert_layers(cfg["emb_dim"], cfg["hidden_dim"])
        self.fc2 = self._expert_layers(cfg["emb_dim"], cfg["hidden_dim"])
        self.fc3 = self._expert_layers(cfg["hidden_dim"], cfg["emb_dim"])
        self.register_buffer("tokens_per_expert", torch.zeros(self.num_experts, dtype=torch.long),
                             persistent=False)

    def _expert_layers(self, d_in, d_out):
        return nn.ModuleList(nn.Linear(d_in, d_out, bias=False) for _ in range(self.num_experts))

    def reset_load(self):
        self.tokens_per_expert.zero_()

    def forward(self, x):
        tokens = x.reshape(-1, self.emb_dim)  # routing is per token: flatten batch and time
        top_scores, top_experts = torch.topk(self.gate(tokens), self.num_experts_per_tok, dim=-1)
        weights = torch.softmax(top_scores, dim=-1)
        self.tokens_per_expert += torch.bincount(top_experts.flatten(), minlength=self.num_experts)
        out = torch.zeros_like(tokens)
        for expert in top_experts.unique().tolist():  # only experts that received tokens
            token_idx, slot = torch.where(top_experts == expert)
            chosen = tokens[token_idx]
            hidden = F.silu(self.fc1[expert](chosen)) * self.fc2[expert](chosen)
            out.index_add_(0, token_idx, self.fc3[expert](hidden) * weights[token_idx, slot, None])
        return out.view_as(x)


# Copied from ch05/11_qwen3/qwen3.py::RMSNorm
class RMSNorm(nn.Module):
    """Scale each vector to unit root mean square, then by a learned `scale` (+ `shift`).

    With `qwen3_compatible` the statistics are computed in float32 and the
    result is cast back before the scale is applied, exactly as Qwen3's
    reference code does, so bfloat16 models round the same way.
    """

    def __init__(self, emb_dim, eps=1e-6, bias=False, qwen3_compatible=True):
        super().__init__()
        self.eps = eps
        self.qwen3_compatible = qwen3_compatible
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim)) if bias else None

    def forward(self, x):
        input_dtype = x.dtype
        if self.qwen3_compatible:
            x = x.to(torch.float32)
        normed = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        normed = normed.to(input_dtype) * self.scale.to(input_dtype)
        if self.shift is not None:
            normed = normed + self.shift.to(input_dtype)
        return normed


# Copied from ch05/11_qwen3/qwen3.py::compute_rope_params
def compute_rope_params(head_dim, theta_base=10_000, context_length=4096, dtype=torch.float32):
    """cos and sin of each position's rotation angles, each (context_length, head_dim)."""
    if head_dim % 2 != 0:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    exponents = torch.arange(0, head_dim, 2, dtype=dtype) / head_dim
    inv_freq = 1.0 / (theta_base ** exponents)  # one frequency per pair of dimensions
    angles = torch.arange(context_length, dtype=dtype)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=1)  # element i pairs with element i + head_dim/2
    return torch.cos(angles), torch.sin(angles)


# Copied from ch05/11_qwen3/qwen3.py::apply_rope
def apply_rope(x, cos, sin, offset=0):
    """Rotate queries or keys x (batch, heads, tokens, head_dim) by their positions.

    The first token of x is at position `offset` (0 unless earlier tokens are
    in a KV cache).
    """
    num_tokens, head_dim = x.shape[2], x.shape[3]
    first, second = x[..., : head_dim // 2], x[..., head_dim // 2:]
    rotated = torch.cat([-second, first], dim=-1)
    cos = cos[offset:offset + num_tokens].to(x.dtype)
    sin = sin[offset:offset + num_tokens].to(x.dtype)
    return x * cos + rotated * sin


# Copied from ch05/11_qwen3/qwen3.py::GroupedQueryAttention
class GroupedQueryAttention(nn.Module):
    """Causal attention in which groups of query heads share one key/value head.

    Qwen3 fixes `head_dim` (128) independently of the width, so
    num_heads * head_dim may differ from d_in, and normalises each head's
    queries and keys (`q_norm`, `k_norm`) before rotating them.
    `mask` is True where a query must not see a key (None: see everything).
    """

    def __init__(self, d_in, num_heads, num_kv_groups, head_dim=None, qk_norm=False, dtype=None):
        super().__init__()
        if num_heads % num_kv_groups != 0:
            raise ValueError(f"n_heads ({num_heads}) must be divisible by "
                             f"n_kv_groups ({num_kv_groups})")
        if head_dim is None:
            if d_in % num_heads != 0:
                raise ValueError(f"emb_dim ({d_in}) must be divisible by n_heads ({num_heads}) "
                                 "when head_dim is not given")
            head_dim = d_in // num_heads
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.head_dim = head_dim
        self.d_out = num_heads * head_dim
        self.W_query = nn.Linear(d_in, self.d_out, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(self.d_out, d_in, bias=False, dtype=dtype)
        self.q_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None

    def forward(self, x, mask, cos, sin):
        queries, keys, values = self.project(x, cos, sin)
        return self.attend(queries, keys, values, mask)

    def project(self, x, cos, sin, offset=0):
        """Queries, keys and values (batch, heads, tokens, head_dim), normalised and rotated."""
        batch_size, num_tokens, _ = x.shape

        def heads(projection, num):
            return projection(x).view(batch_size, num_tokens, num, self.head_dim).transpose(1, 2)

        queries = heads(self.W_query, self.num_heads)
        keys = heads(self.W_key, self.num_kv_groups)
        values = heads(self.W_value, self.num_kv_groups)
        if self.q_norm is not None:
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        return apply_rope(queries, cos, sin, offset), apply_rope(keys, cos, sin, offset), values

    def attend(self, queries, keys, values, mask):
        """softmax(QK^T / sqrt(head_dim)) V over the heads, then the output projection."""
        batch_size, _, num_tokens, _ = queries.shape
        context = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=None if mask is None else ~mask,
            enable_gqa=True)  # each key/value head serves group_size query heads
        return self.out_proj(context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out))


# Copied from ch05/11_qwen3/qwen3.py::TransformerBlock
class TransformerBlock(nn.Module):
    """Pre-norm block: x + att(norm1(x)), then x + ff(norm2(x)).

    The feed-forward network is a mixture of experts when the configuration
    has experts ("num_experts" > 0), else one SwiGLU network.
    """

    attention_class = GroupedQueryAttention  # the KV-cache notebook swaps in its own

    def __init__(self, cfg):
        super().__init__()
        self.att = self.attention_class(
            d_in=cfg["emb_dim"], num_heads=cfg["n_heads"], num_kv_groups=cfg["n_kv_groups"],
            head_dim=cfg.get("head_dim"), qk_norm=cfg["qk_norm"], dtype=cfg["dtype"])
        self.ff = MoEFeedForward(cfg) if cfg.get("num_experts", 0) > 0 else FeedForward(cfg)
        self.norm1 = RMSNorm(cfg["emb_dim"], eps=1e-6)
        self.norm2 = RMSNorm(cfg["emb_dim"], eps=1e-6)

    def forward(self, x, mask, cos, sin):
        x = x + self.att(self.norm1(x), mask, cos, sin)
        return x + self.ff(self.norm2(x))


# Copied from ch05/11_qwen3/qwen3.py::Qwen3Model
class Qwen3Model(nn.Module):
    """Qwen3: token embeddings, `n_layers` blocks, a final RMSNorm and the output head."""

    block_class = TransformerBlock  # the KV-cache notebook swaps in its own

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        self.trf_blocks = nn.ModuleList(self.block_class(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = RMSNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False,
                                  dtype=cfg["dtype"])
        head_dim = cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"]
        cos, sin = compute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.cfg = cfg

    def forward(self, in_idx):
        num_tokens = in_idx.shape[1]
        check_context_length(num_tokens, self.cfg["context_length"])
        x = self.tok_emb(in_idx)
        mask = causal_mask(num_tokens, 0, x.device)
        for block in self.trf_blocks:
            x = block(x, mask, self.cos, self.sin)
        return self.out_head(self.final_norm(x))


# Copied from ch05/11_qwen3/qwen3.py::causal_mask
def causal_mask(num_new, start_pos, device):
    """(num_new, start_pos + num_new), True where a new token must not look (the future).

    None for a single new token: it is the latest one and may see every key.
    """
    if num_new == 1:
        return None
    ones = torch.ones(num_new, start_pos + num_new, dtype=torch.bool, device=device)
    return torch.triu(ones, diagonal=start_pos + 1)


# Copied from ch05/11_qwen3/qwen3.py::check_context_length
def check_context_length(num_tokens, context_length):
    if num_tokens > context_length:
        raise ValueError(f"{num_tokens} tokens do not fit the model's context length "
                         f"of {context_length}; shorten the prompt or max_new_tokens")


# Copied from ch05/11_qwen3/qwen3.py::QWEN_CONFIG_06_B
QWEN_CONFIG_06_B = {
    "vocab_size": 151_936,       # 151,643 BPE tokens, special tokens, and unused rows
    "context_length": 40_960,    # positions the model was trained for
    "emb_dim": 1024,
    "n_heads": 16,
    "n_layers": 28,
    "hidden_dim": 3072,          # SwiGLU hidden size
    "head_dim": 128,             # fixed, whatever the width
    "qk_norm": True,             # RMSNorm on each head's queries and keys
    "n_kv_groups": 8,            # key/value heads
    "rope_base": 1_000_000.0,
    "dtype": torch.bfloat16,
}


# Copied from ch05/11_qwen3/qwen3.py::Qwen3Tokenizer
class Qwen3Tokenizer:
    """Qwen3's byte-level BPE tokenizer, read from the hub's `tokenizer.json`.

    Encoding and decoding are the `tokenizers` library's (the same Rust code
    that transformers uses), so the ids are Hugging Face's. Special tokens
    such as <|im_start|> are recognised in the text. With
    `apply_chat_template`, `encode` wraps the text as a user turn of Qwen3's
    chat format (ChatML); `add_generation_prompt` opens the assistant's turn,
    and without `add_thinking` that turn starts with an empty <think></think>
    block, which makes Qwen3 answer without reasoning first.
    """

    _SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                 "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                 "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>", "<think>", "</think>"]

    def __init__(self, tokenizer_file_path="tokenizer.json", repo_id=None,
                 apply_chat_template=True, add_generation_prompt=False, add_thinking=False):
        from tokenizers import Tokenizer

        self.apply_chat_template = apply_chat_template
        self.add_generation_prompt = add_generation_prompt
        self.add_thinking = add_thinking
        path = Path(tokenizer_file_path)
        if not path.is_file() and repo_id is not None:
            from huggingface_hub import hf_hub_download
            path = Path(hf_hub_download(repo_id=repo_id, filename="tokenizer.json",
                                        local_dir=path.parent))
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as err:  # the library's message names a line and column only
            raise ValueError(f"{path} is not a Hugging Face tokenizer.json "
                             f"({str(err).splitlines()[0]})") from None
        self._special_to_id = {}
        for token in self._SPECIALS:
            token_id = self._tok.token_to_id(token)
            if token_id is None and token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
                raise ValueError(f"{path} is not a Qwen3 tokenizer: it has no {token}")
            self._special_to_id[token] = token_id
        self.pad_token_id = self._special_to_id["<|endoftext|>"]
        self.eos_token_id = self.pad_token_id
        if repo_id is not None and "Base" not in repo_id:
            self.eos_token_id = self._special_to_id["<|im_end|>"]  # chat models end turns

    def encode(self, text, chat_wrapped=None):
        if chat_wrapped is None:
            chat_wrapped = self.apply_chat_template
        if chat_wrapped:
            text = self._wrap_chat(text)
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self._tok.decode(ids, skip_special_tokens=False)

    def _wrap_chat(self, user_msg):
        text = f"<|im_start|>user\n{user_msg}<|im_end|>\n"
        if self.add_generation_prompt:
            text += "<|im_start|>assistant"
            text += "\n" if self.add_thinking else "\n<think>\n\n</think>\n\n"
        return text


