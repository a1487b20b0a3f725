"""Code from chapters 3-5 that this folder builds on.

Copied unchanged from the chapters that introduce it: the GPT model (chapter 4's
gpt.py), the converter from Hugging Face's GPT-2 names and layout to ours (chapter 4's
hf_conversion.py), and text generation (chapter 5). A test checks that every copy still
equals its home, so change a definition at home and re-run `python tools/copy_forward.py
--fix`.
"""

import torch
import torch.nn as nn


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


# Copied from ch04/01_main-chapter-code/ch04.ipynb::GPT_CONFIG_124M
GPT_CONFIG_124M = {
    "vocab_size": 50257,     # GPT-2's BPE vocabulary
    "context_length": 1024,  # longest input the model accepts
    "emb_dim": 768,          # embedding dimension
    "n_heads": 12,           # attention heads per block
    "n_layers": 12,          # transformer blocks
    "drop_rate": 0.1,        # dropout rate
    "qkv_bias": False,       # bias in the query/key/value projections
}


# Copied from ch04/01_main-chapter-code/ch04.ipynb::LayerNorm
class LayerNorm(nn.Module):
    """Normalize each token's vector to mean 0 and variance 1, then rescale.

    `scale` and `shift` are learned, so the model can undo the normalization
    where that helps. eps keeps the division safe when the variance is 0.
    """

    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift


# Copied from ch04/01_main-chapter-code/ch04.ipynb::GELU
class GELU(nn.Module):
    """GELU activation in the tanh approximation that GPT-2 was trained with."""

    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(
            torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))
        ))


# Copied from ch04/01_main-chapter-code/ch04.ipynb::FeedForward
class FeedForward(nn.Module):
    """Expand each token to 4x the embedding size, apply GELU, project back."""

    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x):
        return self.layers(x)


# Copied from ch04/01_main-chapter-code/ch04.ipynb::TransformerBlock
class TransformerBlock(nn.Module):
    """Attention and feed-forward, each pre-normalized and wrapped in a shortcut."""

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


# Copied from ch04/01_main-chapter-code/ch04.ipynb::GPTModel
class GPTModel(nn.Module):
    """GPT-2: embeddings, a stack of transformer blocks, and a vocabulary head."""

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        _, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)


# Copied from ch04/01_main-chapter-code/ch04.ipynb::generate_text_simple
def generate_text_simple(model, idx, max_new_tokens, context_size):
    """Greedily append `max_new_tokens` token ids to the batch `idx`.

    At each step the model sees at most the last `context_size` tokens (the
    longest input it supports) and we keep the most likely next token.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        next_token_logits = logits[:, -1, :]
        idx_next = torch.argmax(next_token_logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


# Both names mean the tanh approximation of GELU, the one our GELU computes.
# Copied from ch04/01_main-chapter-code/hf_conversion.py::TANH_GELU_NAMES
TANH_GELU_NAMES = {"gelu_new", "gelu_pytorch_tanh"}


# Copied from ch04/01_main-chapter-code/hf_conversion.py::LAYER_NORM_EPS
LAYER_NORM_EPS = 1e-5  # the eps our LayerNorm uses


# Copied from ch04/01_main-chapter-code/hf_conversion.py::gpt_config_from_hf
def gpt_config_from_hf(hf_config, drop_rate=0.0):
    """Map a `transformers.GPT2Config` to this chapter's config dictionary.

    `drop_rate` defaults to 0.0: converted models are usually used for
    inference (or as a reference), where dropout must not change the output.
    Raises ValueError for GPT-2 variants that our `GPTModel` cannot express.
    """
    _check_supported(hf_config)
    return {
        "vocab_size": hf_config.vocab_size,
        "context_length": hf_config.n_positions,
        "emb_dim": hf_config.n_embd,
        "n_heads": hf_config.n_head,
        "n_layers": hf_config.n_layer,
        "drop_rate": drop_rate,
        "qkv_bias": True,
    }


# Copied from ch04/01_main-chapter-code/hf_conversion.py::_check_supported
def _check_supported(hf_config):
    """Refuse configurations whose model would compute something else than ours."""
    problems = []
    if hf_config.activation_function not in TANH_GELU_NAMES:
        problems.append(f"activation_function={hf_config.activation_function!r} "
                        f"(ours is the tanh GELU: {sorted(TANH_GELU_NAMES)})")
    if hf_config.layer_norm_epsilon != LAYER_NORM_EPS:
        problems.append(f"layer_norm_epsilon={hf_config.layer_norm_epsilon} "
                        f"(ours is {LAYER_NORM_EPS})")
    if hf_config.n_inner not in (None, 4 * hf_config.n_embd):
        problems.append(f"n_inner={hf_config.n_inner} (ours is 4 * n_embd)")
    if not hf_config.scale_attn_weights or hf_config.scale_attn_by_inverse_layer_idx:
        problems.append("attention scores must be scaled by 1/sqrt(head_dim) only")
    if problems:
        raise ValueError("this GPT-2 configuration differs from GPTModel: " + "; ".join(problems))


# Copied from ch04/01_main-chapter-code/hf_conversion.py::GPT2Tensors
class GPT2Tensors(dict):
    """GPT-2 tensors by name; looking up a missing one raises an error that names it."""

    def __missing__(self, name):
        raise ValueError(f"the GPT-2 weights have no tensor named {name!r}")


# Copied from ch04/01_main-chapter-code/hf_conversion.py::convert_hf_state_dict
def convert_hf_state_dict(hf_state_dict):
    """Rename, split and transpose GPT-2 tensors into `GPTModel`'s state_dict layout.

    Accepts the state_dict of a `GPT2LMHeadModel` (keys start with
    "transformer."), of a bare `GPT2Model`, or the tensors of the hub's
    `model.safetensors` file (the same names, without the prefix). Without an "lm_head.weight" the
    output head gets the token embedding matrix, which is what GPT-2's weight
    tying means anyway.
    """
    hf = GPT2Tensors((key.removeprefix("transformer."), tensor)
                     for key, tensor in hf_state_dict.items())
    ours = {
        "tok_emb.weight": hf["wte.weight"],
        "pos_emb.weight": hf["wpe.weight"],
        "final_norm.scale": hf["ln_f.weight"],
        "final_norm.shift": hf["ln_f.bias"],
        "out_head.weight": hf.get("lm_head.weight", hf["wte.weight"]),
    }
    for i in range(_count_blocks(hf)):
        ours.update(_convert_block(hf, i))
    return ours


# Copied from ch04/01_main-chapter-code/hf_conversion.py::_count_blocks
def _count_blocks(hf):
    return len({key.split(".")[1] for key in hf if key.startswith("h.")})


# Copied from ch04/01_main-chapter-code/hf_conversion.py::_convert_block
def _convert_block(hf, i):
    """One transformer block: GPT-2 names h.<i>.* -> our trf_blocks.<i>.*"""
    src, dst = f"h.{i}.", f"trf_blocks.{i}."
    # c_attn's weight is [emb, 3 * emb]: the query, key and value columns side by side
    q_w, k_w, v_w = hf[src + "attn.c_attn.weight"].chunk(3, dim=1)
    q_b, k_b, v_b = hf[src + "attn.c_attn.bias"].chunk(3, dim=0)
    return {
        dst + "norm1.scale": hf[src + "ln_1.weight"],
        dst + "norm1.shift": hf[src + "ln_1.bias"],
        dst + "att.W_query.weight": q_w.T,
        dst + "att.W_query.bias": q_b,
        dst + "att.W_key.weight": k_w.T,
        dst + "att.W_key.bias": k_b,
        dst + "att.W_value.weight": v_w.T,
        dst + "att.W_value.bias": v_b,
        dst + "att.out_proj.weight": hf[src + "attn.c_proj.weight"].T,
        dst + "att.out_proj.bias": hf[src + "attn.c_proj.bias"],
        dst + "norm2.scale": hf[src + "ln_2.weight"],
        dst + "norm2.shift": hf[src + "ln_2.bias"],
        dst + "ff.layers.0.weight": hf[src + "mlp.c_fc.weight"].T,
        dst + "ff.layers.0.bias": hf[src + "mlp.c_fc.bias"],
        dst + "ff.layers.2.weight": hf[src + "mlp.c_proj.weight"].T,
        dst + "ff.layers.2.bias": hf[src + "mlp.c_proj.bias"],
    }


# Copied from ch04/01_main-chapter-code/hf_conversion.py::load_hf_gpt2_weights
def load_hf_gpt2_weights(model, hf_state_dict):
    """Copy a GPT-2 state_dict (Hugging Face names) into `model`, in place.

    `model` must be a `GPTModel` with qkv_bias=True and the same sizes;
    PyTorch's `load_state_dict` names any tensor whose shape differs. The
    causal masks are not weights, so they are the only keys allowed to be
    missing; a different number of blocks is an error.
    """
    converted = convert_hf_state_dict(hf_state_dict)
    result = model.load_state_dict(converted, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith(".att.mask")]
    if missing or result.unexpected_keys:
        raise ValueError(
            "GPT-2 weights do not fit this GPTModel: "
            f"missing {missing}, unexpected {result.unexpected_keys}"
        )
    return model


# Copied from ch04/01_main-chapter-code/hf_conversion.py::gpt_model_from_hf
def gpt_model_from_hf(hf_model, drop_rate=0.0):
    """Build a `GPTModel` holding the weights of a `transformers.GPT2LMHeadModel`.

    The new model lives on the CPU in eval mode (like a freshly loaded Hugging
    Face model); move it with `.to(device)`.
    """
    cfg = gpt_config_from_hf(hf_model.config, drop_rate=drop_rate)
    model = GPTModel(cfg)
    load_hf_gpt2_weights(model, hf_model.state_dict())
    return model.eval()


# Copied from ch05/01_main-chapter-code/ch05.ipynb::text_to_token_ids
def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::token_ids_to_text
def token_ids_to_text(token_ids, tokenizer):
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids to text."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


# Copied from ch05/01_main-chapter-code/ch05.ipynb::generate
def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None,
             eos_id=None):
    """Extend the token ids `idx` (batch, tokens) by up to `max_new_tokens` tokens.

    temperature 0 picks the most likely token (greedy, deterministic); a
    temperature > 0 samples from the softmax of logits / temperature, so lower
    values are more conservative and higher values more surprising. top_k keeps
    only the k most likely tokens as candidates. Generation stops early when
    every sequence in the batch produces `eos_id`.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # the model supports at most context_size tokens
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]  # only the last position predicts the next token

        if top_k is not None:
            top_logits, _ = torch.topk(logits, top_k)
            kth_largest = top_logits[:, -1:]
            logits = logits.masked_fill(logits < kth_largest, -torch.inf)

        if temperature > 0.0:
            probs = torch.softmax(logits / temperature, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)

        if eos_id is not None and bool((idx_next == eos_id).all()):
            break
        idx = torch.cat((idx, idx_next), dim=1)
    return idx
