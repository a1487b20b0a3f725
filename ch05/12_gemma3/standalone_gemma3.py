"""The Gemma 3 model code of standalone-gemma3-plus-kvcache.ipynb, as a module for scripts.

Copies of the notebook's definitions (a test keeps them identical): the model with its
KV cache (`Gemma3Model`, `KVCache`), the configuration, the loader for Hugging Face-format
weights and streaming generation. The notebook explains each part.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from tokenizers import Tokenizer


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::RMSNorm
class RMSNorm(nn.Module):
    """Gemma's RMSNorm: scale to unit root mean square, then by (1 + scale).

    Gemma stores the learned weight as an offset from 1, initialised to zeros
    (the identity), and multiplies in float32 before casting back, so
    bfloat16 inputs lose no precision in the scaling either.
    """

    def __init__(self, emb_dim, eps=1e-6, bias=False):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim)) if bias else None

    def forward(self, x):
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        out = normed * (1.0 + self.scale.float())
        if self.shift is not None:
            out = out + self.shift.float()
        return out.to(x.dtype)


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::FeedForward
class FeedForward(nn.Module):
    """Gemma's gated feed-forward network: fc3(GELU(fc1(x)) * fc2(x)), no biases.

    Llama's SwiGLU with the tanh-approximated GELU (chapter 4's formula) in
    place of SiLU as the gate's activation.
    """

    def __init__(self, cfg):
        super().__init__()
        emb_dim, hidden_dim, dtype = cfg["emb_dim"], cfg["hidden_dim"], cfg["dtype"]
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)  # gate
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)  # up
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False, dtype=dtype)  # down

    def forward(self, x):
        return self.fc3(F.gelu(self.fc1(x), approximate="tanh") * self.fc2(x))


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


# The names the book repository's Gemma 3 notebooks use for these two functions
compute_rope_params = precompute_rope_params


apply_rope = compute_rope


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::GroupedQueryAttention
class GroupedQueryAttention(nn.Module):
    """Causal grouped-query attention with Gemma 3's normed queries and keys.

    `num_heads` query heads share `num_kv_groups` key/value heads. Queries and
    keys pass through their own RMSNorm (`qk_norm`) before RoPE, and scores are
    scaled by query_pre_attn_scalar ** -0.5 (Gemma 3 sets it to 256, equal to
    head_dim for 270M; the default is head_dim ** -0.5). `mask` is True where a
    query must not see a key.
    """

    def __init__(self, d_in, num_heads, num_kv_groups, head_dim=None, qk_norm=False,
                 query_pre_attn_scalar=None, dtype=None):
        super().__init__()
        if num_heads % num_kv_groups != 0:
            raise ValueError(f"num_heads ({num_heads}) must be divisible by "
                             f"num_kv_groups ({num_kv_groups})")
        if head_dim is None:
            if d_in % num_heads != 0:
                raise ValueError(f"d_in ({d_in}) must be divisible by num_heads ({num_heads}) "
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
        self.q_norm = RMSNorm(head_dim) if qk_norm else None
        self.k_norm = RMSNorm(head_dim) if qk_norm else None
        self.scaling = (query_pre_attn_scalar or head_dim) ** -0.5

    def _split_heads(self, x, num_heads):
        """(batch, tokens, num_heads * head_dim) -> (batch, num_heads, tokens, head_dim)."""
        batch_size, num_tokens, _ = x.shape
        return x.view(batch_size, num_tokens, num_heads, self.head_dim).transpose(1, 2)
    def forward(self, x, mask, cos, sin, start_pos=0, cache=None):
        """Attend from the new tokens in `x`, which start at position `start_pos`.

        `cache` holds the (keys, values) of the earlier positions, or None; the
        second return value holds them with the new tokens' appended.
        """
        batch_size, num_tokens, _ = x.shape
        queries = self._split_heads(self.W_query(x), self.num_heads)
        keys = self._split_heads(self.W_key(x), self.num_kv_groups)
        values = self._split_heads(self.W_value(x), self.num_kv_groups)
        if self.q_norm is not None:
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        # The new tokens' angles are the rows from start_pos on.
        cos, sin = cos[start_pos:], sin[start_pos:]
        queries, keys = apply_rope(queries, cos, sin), apply_rope(keys, cos, sin)
        if cache is not None:
            keys = torch.cat([cache[0], keys], dim=2)
            values = torch.cat([cache[1], values], dim=2)
        next_cache = (keys, values)

        keys = keys.repeat_interleave(self.group_size, dim=1)
        values = values.repeat_interleave(self.group_size, dim=1)
        context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=~mask,
                                                 scale=self.scaling)
        out = self.out_proj(context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out))
        return out, next_cache


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::ATTENTION_TYPES
ATTENTION_TYPES = ("sliding_attention", "full_attention")


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::TransformerBlock
class TransformerBlock(nn.Module):
    """A Gemma 3 block: four RMSNorms, before and after attention and feed-forward.

    Gemma normalises each branch's input (as Llama does) and also its output,
    before adding it to the residual stream. `attn_type` picks the layer's
    kind: "sliding_attention" sees only the last `sliding_window` tokens and
    uses the local RoPE angles; "full_attention" sees all earlier tokens and
    uses the global ones.
    """

    def __init__(self, cfg, attn_type):
        super().__init__()
        if attn_type not in ATTENTION_TYPES:
            raise ValueError(f"unknown attention type {attn_type!r}: "
                             f"expected one of {ATTENTION_TYPES}")
        self.attn_type = attn_type
        self.att = GroupedQueryAttention(
            d_in=cfg["emb_dim"], num_heads=cfg["n_heads"], num_kv_groups=cfg["n_kv_groups"],
            head_dim=cfg["head_dim"], qk_norm=cfg["qk_norm"],
            query_pre_attn_scalar=cfg["query_pre_attn_scalar"], dtype=cfg["dtype"],
        )
        self.ff = FeedForward(cfg)
        self.input_layernorm = RMSNorm(cfg["emb_dim"])
        self.post_attention_layernorm = RMSNorm(cfg["emb_dim"])
        self.pre_feedforward_layernorm = RMSNorm(cfg["emb_dim"])
        self.post_feedforward_layernorm = RMSNorm(cfg["emb_dim"])
    def forward(self, x, mask_global, mask_local, cos_global, sin_global, cos_local, sin_local,
                start_pos=0, cache=None):
        if self.attn_type == "sliding_attention":
            mask, cos, sin = mask_local, cos_local, sin_local
        else:
            mask, cos, sin = mask_global, cos_global, sin_global
        attended, next_cache = self.att(self.input_layernorm(x), mask, cos, sin,
                                        start_pos=start_pos, cache=cache)
        x = x + self.post_attention_layernorm(attended)
        x = x + self.post_feedforward_layernorm(self.ff(self.pre_feedforward_layernorm(x)))
        return x, next_cache


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::check_gemma3_config
def check_gemma3_config(cfg):
    """Raise a ValueError naming the first inconsistent entry of a configuration."""
    if len(cfg["layer_types"]) != cfg["n_layers"]:
        raise ValueError(f"layer_types has {len(cfg['layer_types'])} entries, "
                         f"but n_layers is {cfg['n_layers']}")
    if cfg["n_heads"] % cfg["n_kv_groups"] != 0:
        raise ValueError(f"n_heads ({cfg['n_heads']}) must be divisible by "
                         f"n_kv_groups ({cfg['n_kv_groups']})")
    if cfg["head_dim"] is None and cfg["emb_dim"] % cfg["n_heads"] != 0:
        raise ValueError(f"emb_dim ({cfg['emb_dim']}) must be divisible by n_heads "
                         f"({cfg['n_heads']}) when head_dim is None")


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::Gemma3Model
class Gemma3Model(nn.Module):
    """Gemma 3 (text): blocks of sliding-window and full attention, 5 to 1.

    The token embeddings are multiplied by sqrt(emb_dim). Sliding-window
    layers rotate with RoPE base `rope_local_base`, full-attention layers with
    `rope_base`; both tables are buffers, computed once.
    """

    def __init__(self, cfg):
        super().__init__()
        check_gemma3_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        self.blocks = nn.ModuleList([TransformerBlock(cfg, attn_type)
                                     for attn_type in cfg["layer_types"]])
        self.final_norm = RMSNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False,
                                  dtype=cfg["dtype"])
        head_dim = cfg["head_dim"] or cfg["emb_dim"] // cfg["n_heads"]
        cos_local, sin_local = compute_rope_params(head_dim, cfg["rope_local_base"],
                                                   cfg["context_length"])
        cos_global, sin_global = compute_rope_params(head_dim, cfg["rope_base"],
                                                     cfg["context_length"])
        self.register_buffer("cos_local", cos_local, persistent=False)
        self.register_buffer("sin_local", sin_local, persistent=False)
        self.register_buffer("cos_global", cos_global, persistent=False)
        self.register_buffer("sin_global", sin_global, persistent=False)
        self.current_pos = 0  # how many positions the KV cache holds

    def _embed(self, input_ids, num_positions):
        if num_positions > self.cfg["context_length"]:
            raise ValueError(f"{num_positions} tokens exceed the context length "
                             f"{self.cfg['context_length']}")
        x = self.tok_emb(input_ids)
        # sqrt(emb_dim), rounded to the weights' dtype as Gemma does
        return x * torch.tensor(self.cfg["emb_dim"] ** 0.5, dtype=x.dtype)
    def reset_kv_cache(self):
        self.current_pos = 0

    def _create_masks(self, cur_len, device, pos_start=0, pos_end=None):
        """(mask_global, mask_local) for the queries at positions pos_start .. pos_end - 1.

        The keys are all positions 0 .. pos_end - 1 (cached ones first). True
        where query i must not see key j: the future (j > i) for full
        attention, and also keys `sliding_window` or more back (i - j >= window)
        for sliding-window attention.
        """
        pos_end = cur_len if pos_end is None else pos_end
        i = torch.arange(pos_start, pos_end, device=device)[:, None]
        j = torch.arange(pos_end, device=device)[None, :]
        mask_global = j > i
        mask_local = mask_global | (i - j >= self.cfg["sliding_window"])
        return mask_global, mask_local

    def forward(self, input_ids, cache=None):
        """Logits for `input_ids`; with a `cache`, they continue the cached positions."""
        num_tokens = input_ids.shape[1]
        pos_start = self.current_pos if cache is not None else 0
        pos_end = pos_start + num_tokens
        x = self._embed(input_ids, pos_end)
        mask_global, mask_local = self._create_masks(num_tokens, x.device, pos_start, pos_end)
        for index, block in enumerate(self.blocks):
            layer_cache = cache.get(index) if cache is not None else None
            x, next_cache = block(x, mask_global, mask_local, self.cos_global, self.sin_global,
                                  self.cos_local, self.sin_local, start_pos=pos_start,
                                  cache=layer_cache)
            if cache is not None:
                cache.update(index, next_cache)
        if cache is not None:
            self.current_pos = pos_end
        return self.out_head(self.final_norm(x))


# Copied from ch05/11_qwen3/qwen3_kvcache.py::KVCache
class KVCache:
    """The keys and values of every layer for the tokens seen so far."""

    def __init__(self, n_layers):
        self.cache = [None] * n_layers

    def get(self, layer_idx):
        return self.cache[layer_idx]

    def update(self, layer_idx, value):
        self.cache[layer_idx] = value

    def get_all(self):
        return self.cache

    def reset(self):
        for i in range(len(self.cache)):
            self.cache[i] = None


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::GEMMA3_CONFIG_270M
GEMMA3_CONFIG_270M = {
    "vocab_size": 262_144,
    "context_length": 32_768,
    "emb_dim": 640,
    "n_heads": 4,
    "n_layers": 18,
    "hidden_dim": 2048,
    "head_dim": 256,
    "qk_norm": True,
    "n_kv_groups": 1,            # one key/value head, shared by all 4 query heads
    "rope_local_base": 10_000.0,
    "rope_base": 1_000_000.0,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,  # 18 layers, 5:1
    "dtype": torch.bfloat16,
    "query_pre_attn_scalar": 256,
}


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::GEMMA3_CONFIGS
GEMMA3_CONFIGS = {"270m": GEMMA3_CONFIG_270M}


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::gemma3_config
def gemma3_config(model_size, overrides=None):
    """The configuration of a Gemma 3 size ("270m"), with `overrides` applied."""
    if model_size not in GEMMA3_CONFIGS:
        raise ValueError(f"unknown Gemma 3 size {model_size!r}: choose one of "
                         f"{', '.join(GEMMA3_CONFIGS)}")
    cfg = {**GEMMA3_CONFIGS[model_size], **(overrides or {})}
    check_gemma3_config(cfg)
    return cfg


# Copied from ch05/11_qwen3/qwen3.py::calc_model_memory_size
def calc_model_memory_size(model, input_dtype=torch.float32):
    """GiB for the parameters, their gradients and the buffers, in `input_dtype`."""
    element_size = torch.tensor(0, dtype=input_dtype).element_size()
    num_params = sum(p.numel() for p in model.parameters())
    num_grads = sum(p.numel() for p in model.parameters() if p.requires_grad)
    num_buffers = sum(b.numel() for b in model.buffers())
    return (num_params + num_grads + num_buffers) * element_size / 1024**3


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::GemmaTokenizer
class GemmaTokenizer:
    """Gemma 3's tokenizer, read from the hub's `tokenizer.json` with `tokenizers`.

    `encode` puts <bos> first (as Gemma expects); text such as
    "<start_of_turn>" becomes its special token. `apply_chat_template` writes
    Gemma 3's chat format: each message as <start_of_turn>role, newline, the
    stripped text, <end_of_turn> and a newline; the assistant's role is called
    "model", and a system message is put in front of the first user message.
    """

    bos_token, eos_token, pad_token = "<bos>", "<eos>", "<pad>"
    start_of_turn_token, end_of_turn_token = "<start_of_turn>", "<end_of_turn>"
    add_bos_token, add_eos_token = True, False
    clean_up_tokenization_spaces = False

    def __init__(self, tokenizer_file_path):
        try:
            self._tok = Tokenizer.from_file(str(tokenizer_file_path))
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(f"{tokenizer_file_path} is not a tokenizer.json file that the "
                             f"tokenizers library can read ({reason})") from None
        for attribute in ("bos_token", "eos_token", "pad_token", "start_of_turn_token",
                          "end_of_turn_token"):
            token = getattr(self, attribute)
            token_id = self._tok.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{tokenizer_file_path} has no {token} token: "
                                 "not a Gemma 3 tokenizer")
            setattr(self, attribute + "_id", token_id)

    def encode(self, text, add_special_tokens=True):
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if add_special_tokens and self.add_bos_token:
            ids = [self.bos_token_id] + ids
        if add_special_tokens and self.add_eos_token:
            ids = ids + [self.eos_token_id]
        return ids

    def decode(self, ids, skip_special_tokens=False):
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        """Gemma 3's chat template, for a list of {"role", "content"} messages."""
        first_user_prefix = ""
        if messages and messages[0]["role"] == "system":
            first_user_prefix = messages[0]["content"] + "\n\n"
            messages = messages[1:]
        text = self.bos_token
        for index, message in enumerate(messages):
            if (message["role"] == "user") != (index % 2 == 0):
                raise ValueError("conversation roles must alternate user/assistant/user/...")
            role = "model" if message["role"] == "assistant" else message["role"]
            prefix = first_user_prefix if index == 0 else ""
            text += (f"{self.start_of_turn_token}{role}\n{prefix}"
                     f"{message['content'].strip()}{self.end_of_turn_token}\n")
        if add_generation_prompt:
            text += f"{self.start_of_turn_token}model\n"
        # The text already starts with <bos>: no second one.
        return self.encode(text, add_special_tokens=False) if tokenize else text


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::apply_chat_template
def apply_chat_template(user_text):
    """One user turn and the start of the model's answer (encode adds <bos>)."""
    return f"<start_of_turn>user\n{user_text}<end_of_turn>\n<start_of_turn>model\n"


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::load_weights_into_gemma
def load_weights_into_gemma(model, param_config, params):
    """Copy a Hugging Face Gemma 3 state dict `params` into our model, in place.

    Hugging Face's names map to ours one to one; a missing tensor or a shape
    that does not fit raises an error naming the checkpoint's tensor. Without
    "lm_head.weight" (Gemma 3 ties it), the output head shares the embedding.
    """
    def assign(left, right, tensor_name="unknown"):
        if left.shape != right.shape:
            raise ValueError(f"shape mismatch in tensor {tensor_name!r}: the model has "
                             f"{tuple(left.shape)}, the checkpoint {tuple(right.shape)}")
        with torch.no_grad():
            left.copy_(right)  # keeps the model's dtype and device

    def tensor(name):
        if name not in params:
            raise KeyError(f"the checkpoint has no tensor {name!r}")
        return params[name]

    targets = {"model.embed_tokens.weight": model.tok_emb.weight,
               "model.norm.weight": model.final_norm.scale}
    for layer in range(param_config["n_layers"]):
        block, prefix = model.blocks[layer], f"model.layers.{layer}."
        targets.update({
            prefix + "self_attn.q_proj.weight": block.att.W_query.weight,
            prefix + "self_attn.k_proj.weight": block.att.W_key.weight,
            prefix + "self_attn.v_proj.weight": block.att.W_value.weight,
            prefix + "self_attn.o_proj.weight": block.att.out_proj.weight,
            prefix + "mlp.gate_proj.weight": block.ff.fc1.weight,
            prefix + "mlp.up_proj.weight": block.ff.fc2.weight,
            prefix + "mlp.down_proj.weight": block.ff.fc3.weight,
            prefix + "input_layernorm.weight": block.input_layernorm.scale,
            prefix + "post_attention_layernorm.weight": block.post_attention_layernorm.scale,
            prefix + "pre_feedforward_layernorm.weight": block.pre_feedforward_layernorm.scale,
            prefix + "post_feedforward_layernorm.weight": block.post_feedforward_layernorm.scale,
        })
        if block.att.q_norm is not None:
            targets[prefix + "self_attn.q_norm.weight"] = block.att.q_norm.scale
            targets[prefix + "self_attn.k_norm.weight"] = block.att.k_norm.scale
    for name, target in targets.items():
        assign(target, tensor(name), name)

    if "lm_head.weight" in params:
        assign(model.out_head.weight, params["lm_head.weight"], "lm_head.weight")
    else:
        model.out_head.weight = model.tok_emb.weight
        print("Model uses weight tying.")


# Copied from ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb::generate_text_basic_stream
def generate_text_basic_stream(model, token_ids, max_new_tokens, eos_token_id=None,
                               context_size=None):
    """Greedy decoding with a KV cache, yielding each new token (batch, 1).

    The prompt runs through the model once; after that, each step feeds only
    the token chosen last, whose query attends to the cached keys and values.
    Stops after `max_new_tokens`, when every sequence produced `eos_token_id`,
    or when the sequence fills `context_size` positions (default: the model's
    context length).
    """
    context_size = context_size or model.cfg["context_length"]
    if token_ids.shape[1] > context_size:
        raise ValueError(f"the prompt has {token_ids.shape[1]} tokens, more than the "
                         f"context size {context_size}")
    num_steps = min(max_new_tokens, context_size - token_ids.shape[1])
    model.eval()
    cache = KVCache(n_layers=model.cfg["n_layers"])
    model.reset_kv_cache()
    try:
        with torch.no_grad():
            logits = model(token_ids, cache=cache)[:, -1]
            for step in range(num_steps):
                next_token = torch.argmax(logits, dim=-1, keepdim=True)
                if eos_token_id is not None and bool((next_token == eos_token_id).all()):
                    break
                yield next_token
                if step + 1 < num_steps:
                    logits = model(next_token, cache=cache)[:, -1]
    finally:
        model.reset_kv_cache()  # the next call starts a new sequence
