"""Chapter 4 summary: everything needed to build a GPT model and generate text.

Run it from the shell:

    python gpt.py

It builds the 124M-parameter GPT-2 architecture with random weights (seed 123)
and greedily continues "Hello, I am" by 10 tokens. The output is gibberish, as
it should be: the model has not been trained yet (that is chapter 5).

The chapter 2 and 3 definitions are copied here unchanged, so this file runs on
its own; a test checks that every copy equals its home in the chapter notebooks.
"""

import tiktoken
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from downloads import cache_gpt2_tokenizer_files
from script_helpers import ScriptArgumentParser, add_device_argument, non_negative_int


# Copied from ch02/01_main-chapter-code/ch02.ipynb::GPTDatasetV1
class GPTDatasetV1(Dataset):
    """Input/target pairs cut from one long text with a sliding window.

    Each input is `max_length` token ids; its target is the same window moved
    one token to the right, so position i of the target is the token that
    follows position i of the input.
    """

    def __init__(self, txt, tokenizer, max_length, stride):
        self.input_ids = []
        self.target_ids = []

        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})

        for start in range(0, len(token_ids) - max_length, stride):
            window = token_ids[start:start + max_length + 1]
            self.input_ids.append(torch.tensor(window[:-1]))
            self.target_ids.append(torch.tensor(window[1:]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


# Copied from ch02/01_main-chapter-code/ch02.ipynb::create_dataloader_v1
def create_dataloader_v1(txt, batch_size=4, max_length=256, stride=128,
                         shuffle=True, drop_last=True, num_workers=0):
    """Tokenize `txt` with GPT-2's BPE and serve sliding-window batches."""
    tokenizer = tiktoken.get_encoding("gpt2")
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )


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


def parse_args(argv=None):
    """The command line as `main`'s keyword arguments (plain values; device a torch.device)."""
    parser = ScriptArgumentParser(
        description="Build GPT-2 (124M) with random weights and generate a few tokens.",
    )
    parser.add_argument("--prompt", default="Hello, I am", help="text to continue")
    parser.add_argument("--max-new-tokens", type=non_negative_int, default=10,
                        help="how many tokens to generate")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for the random initial weights")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    if not args.prompt:
        parser.error("argument --prompt: must not be empty (the model needs a token to continue)")
    return {"start_context": args.prompt, "max_new_tokens": args.max_new_tokens,
            "seed": args.seed, "device": args.device}


def main(start_context="Hello, I am", max_new_tokens=10, seed=123, device="cpu"):
    """The book's `main()`: build GPT-2 124M from `seed`, continue `start_context` greedily.

    Called with no arguments (from Python, as the book does, or as `python gpt.py`)
    it prints the book's output. The command line is read only when the file
    runs as a script, so importing it and calling `main()` never sees sys.argv.
    The weights are drawn on the CPU before moving to `device`, so every device
    starts from the same model.
    """
    if not start_context:
        raise ValueError("start_context must not be empty: the model needs a token to continue")

    torch.manual_seed(seed)
    model = GPTModel(GPT_CONFIG_124M)
    model.to(device)
    model.eval()  # disable dropout: generation should be deterministic

    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    encoded = tokenizer.encode(start_context)
    encoded_tensor = torch.tensor(encoded).unsqueeze(0)  # add a batch dimension

    print(f"\n{50 * '='}\n{22 * ' '}IN\n{50 * '='}")
    print("\nInput text:", start_context)
    print("Encoded input text:", encoded)
    print("encoded_tensor.shape:", encoded_tensor.shape)

    out = generate_text_simple(
        model=model,
        idx=encoded_tensor.to(device),
        max_new_tokens=max_new_tokens,
        context_size=GPT_CONFIG_124M["context_length"],
    ).cpu()
    decoded_text = tokenizer.decode(out.squeeze(0).tolist())

    print(f"\n\n{50 * '='}\n{22 * ' '}OUT\n{50 * '='}")
    print("\nOutput:", out)
    print("Output length:", len(out[0]))
    print("Output text:", decoded_text)


if __name__ == "__main__":
    main(**parse_args())
