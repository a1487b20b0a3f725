# Copied from ch04/04_gqa/kv_gpt_skeleton.py
"""The skeleton shared by the `gpt_with_kv_*.py` scripts of the chapter 4 bonus folders 04-08.

Every script in these folders runs the same experiment: chapter 4's GPT with a
KV cache, one piece swapped (the attention or the feed-forward layer), greedy
generation from "Hello, I am", and a printout of time, tokens/s and peak
memory. So that the five folders do not carry five near-identical scripts, the
common parts live here, and this file is copied whole into each folder (a test
checks that the copies stay identical):

- chapter 4's `LayerNorm`, `GELU`, `FeedForward` and `generate_text_simple`,
  and chapter 4 bonus 03's `generate_text_simple_cached` (copies);
- small attention helpers (`split_heads`, `append_tokens`, `hidden_mask`,
  `attend`) that every attention variant uses;
- `KVGPTModel`: chapter 4's GPT with a KV cache, leaving open which attention
  (and which feed-forward) layer each block gets. A variant subclasses it under
  the book's name `GPTModel` and defines `make_attention(cfg, layer_idx)`;
- `kv_cache_bytes(model)`: what the caches of all layers hold right now;
- the command line (`add_common_arguments`, `parse_common_arguments`) and the
  measured run (`run_generation`).
"""

import sys
import time

import tiktoken
import torch
import torch.nn as nn
from downloads import cache_gpt2_tokenizer_files
from script_helpers import add_device_argument, positive_int, synchronize

try:
    import resource  # Unix only: the peak RSS on a CPU
except ImportError:
    resource = None

PROMPT = "Hello, I am"
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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


# Copied from ch04/03_kv-cache/gpt_with_kv_cache.py::CacheFullError
class CacheFullError(RuntimeError):
    """Raised when new tokens would not fit into the KV cache any more."""


# Copied from ch04/03_kv-cache/gpt_with_kv_cache.py::check_cache_room
def check_cache_room(cached, new, context_length):
    """Fail clearly when `cached` + `new` tokens exceed the supported context."""
    if cached + new > context_length:
        raise CacheFullError(
            f"{cached} cached + {new} new tokens exceed context_length={context_length}; "
            f"call reset_kv_cache() and continue from the last {context_length} tokens at most"
        )


# Copied from ch04/03_kv-cache/gpt_with_kv_cache.py::generate_text_simple_cached
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


def check_divisible(total, parts, total_name, parts_name):
    """Raise a ValueError that names both numbers unless `parts` divides `total`."""
    if parts < 1 or total % parts != 0:
        raise ValueError(f"{total_name} ({total}) must be divisible by {parts_name} ({parts})")


def split_heads(x, num_heads):
    """(batch, tokens, heads * head_dim) -> (batch, tokens, heads, head_dim)."""
    batch_size, num_tokens, width = x.shape
    return x.view(batch_size, num_tokens, num_heads, width // num_heads)


def append_tokens(cache, new):
    """The cache with `new` appended along the token dimension (dim 1).

    `torch.cat` copies the cache at every step; the caches here stay that
    simple on purpose (chapter 4 bonus 03 shows a preallocated cache), so
    their size is exactly what the memory estimators predict.
    """
    return new if cache is None else torch.cat([cache, new], dim=1)


def hidden_mask(query_start, num_queries, key_start, num_keys, window=None, device=None):
    """(queries, keys) booleans, True where a query may NOT see a key.

    Queries sit at absolute positions query_start, query_start + 1, ...; keys
    at key_start, key_start + 1, ... (a trimmed cache starts later than 0). A
    query sees the keys at its own position and before it (causal), and with a
    `window` only the last `window` of those, itself included.
    """
    query_pos = torch.arange(query_start, query_start + num_queries, device=device)
    key_pos = torch.arange(key_start, key_start + num_keys, device=device)
    distance = query_pos[:, None] - key_pos[None, :]
    hidden = distance < 0
    if window is not None:
        hidden |= distance >= window
    return hidden


def attend(queries, keys, values, hidden, dropout):
    """Masked scaled dot-product attention on (batch, tokens, heads, head_dim) tensors.

    Returns the context vectors in the same layout as `queries`.
    """
    queries, keys, values = (t.transpose(1, 2) for t in (queries, keys, values))
    scores = queries @ keys.transpose(2, 3)
    scores = scores.masked_fill(hidden, -torch.inf)
    weights = torch.softmax(scores / queries.shape[-1] ** 0.5, dim=-1)
    return (dropout(weights) @ values).transpose(1, 2)


class KVTransformerBlock(nn.Module):
    """Chapter 4's pre-norm block around any attention and feed-forward layer."""

    def __init__(self, cfg, att, ff):
        super().__init__()
        self.att = att
        self.ff = ff
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, use_cache=False):
        x = x + self.drop_shortcut(self.att(self.norm1(x), use_cache=use_cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class KVGPTModel(nn.Module):
    """Chapter 4's GPT with a KV cache; subclasses choose each block's attention.

    The layers are created in chapter 4's order (the embeddings, then per block
    the attention layer before the feed-forward layer), so with the same seed
    and chapter 4's attention the weights equal chapter 4's `GPTModel`.

    `model(idx, use_cache=True)` continues after everything fed since the last
    `reset_kv_cache()`: positions start at `current_pos`, and every attention
    layer keeps what it needs for later tokens in buffers named `cache_*`
    (non-persistent: they never end up in a state dict).
    """

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList(
            [KVTransformerBlock(cfg, self.make_attention(cfg, i), self.make_feed_forward(cfg, i))
             for i in range(cfg["n_layers"])]
        )
        self.current_pos = 0
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def make_attention(self, cfg, layer_idx):
        """The attention layer of block `layer_idx`: each variant defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define make_attention")

    def make_feed_forward(self, cfg, layer_idx):
        """The feed-forward layer of block `layer_idx`: chapter 4's, unless a variant swaps it."""
        return FeedForward(cfg)

    def reset_kv_cache(self):
        """Forget everything cached, e.g. before a new prompt."""
        for block in self.trf_blocks:
            block.att.reset_cache()
        self.current_pos = 0

    def cached_tokens(self):
        """How many tokens the model has seen since the last reset."""
        return self.current_pos

    def forward(self, in_idx, use_cache=False):
        num_tokens = in_idx.shape[1]
        start = self.current_pos if use_cache else 0
        check_cache_room(start, num_tokens, self.pos_emb.num_embeddings)
        positions = torch.arange(start, start + num_tokens, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        for block in self.trf_blocks:
            x = block(x, use_cache=use_cache)
        if use_cache:
            self.current_pos += num_tokens
        return self.out_head(self.final_norm(x))


def kv_cache_bytes(model):
    """Bytes that all layers' caches (buffers named `cache_*`) keep allocated right now.

    Counts each cache tensor's whole storage, not just the part it shows: a cache
    trimmed by slicing would otherwise look smaller than the memory it holds.
    """
    return sum(buffer.untyped_storage().nbytes() for name, buffer in model.named_buffers()
               if name.rsplit(".", 1)[-1].startswith("cache_"))


def add_common_arguments(parser):
    """The flags every `gpt_with_kv_*.py` script shares (the book's defaults)."""
    parser.add_argument("--emb-dim", type=positive_int, default=768, help="embedding size")
    parser.add_argument("--n-heads", type=positive_int, default=12, help="attention heads")
    parser.add_argument("--n-layers", type=positive_int, default=12, help="transformer blocks")
    parser.add_argument("--max-new-tokens", type=positive_int, default=200,
                        help="tokens to generate (the context is this plus the prompt)")
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="bf16",
                        help="the model's number format (the book uses bfloat16)")
    add_device_argument(parser)


def parse_common_arguments(parser, argv):
    """Parse `argv`; return the parsed flags and `run_generation`'s settings as plain values.

    The script reads its own flags from the first and passes the second to
    `run_generation` unchanged. Checks that involve several of the common
    flags exit here, with one line naming the flag.
    """
    args = parser.parse_args(argv)
    if args.emb_dim % args.n_heads != 0:
        parser.error(f"argument --n-heads: {args.n_heads} heads do not divide "
                     f"--emb-dim {args.emb_dim} into equal parts")
    settings = {"emb_dim": args.emb_dim, "n_heads": args.n_heads, "n_layers": args.n_layers,
                "max_new_tokens": args.max_new_tokens, "dtype": TORCH_DTYPES[args.dtype],
                "device": args.device}
    return args, settings


def peak_memory_text(device):
    """Peak memory: what PyTorch allocated on a GPU, the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return f"Max memory allocated: {torch.cuda.max_memory_allocated(device) / 1024**3:.2f} GB"
    if resource is None:
        return "Peak RSS: not measured on this platform (no `resource` module)"
    # ru_maxrss counts KiB on Linux and bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024
    return (f"Peak RSS of this process: {peak / 1024**3:.2f} GB "
            "(CPU: Python, PyTorch, the weights and the cache together)")


def run_generation(model_class, extra_cfg, emb_dim, n_heads, n_layers, max_new_tokens, dtype,
                   device, use_cache=True):
    """Build the model (seed 123), generate greedily from PROMPT, print the measurements.

    Returns the generated ids (prompt included), a (1, tokens) tensor.
    """
    cache_gpt2_tokenizer_files()
    tokenizer = tiktoken.get_encoding("gpt2")
    encoded = tokenizer.encode(PROMPT)
    cfg = {"vocab_size": 50257, "context_length": max_new_tokens + len(encoded),
           "emb_dim": emb_dim, "n_heads": n_heads, "n_layers": n_layers,
           "drop_rate": 0.0, "qkv_bias": False, **extra_cfg}
    torch.manual_seed(123)
    model = model_class(cfg).to(device=device, dtype=dtype).eval()
    idx = torch.tensor([encoded], device=device)
    print(f"Input text: {PROMPT!r} ({len(encoded)} tokens), device {device}, {dtype}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    out = generate_text_simple_cached(model, idx, max_new_tokens, use_cache=use_cache)
    synchronize(device)
    seconds = time.perf_counter() - start
    print(f"Output: {out.shape[1]} tokens, {tokenizer.decode(out[0].tolist())!r}")
    print(f"Time: {seconds:.2f} sec")
    print(f"{max_new_tokens / seconds:.1f} tokens/sec")  # the book prints a whole number
    print(peak_memory_text(device))
    return out
