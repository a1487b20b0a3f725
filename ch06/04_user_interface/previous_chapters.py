"""Code from chapters 3 to 6 that the spam classifier app builds on, copied unchanged.

Each definition is a copy of its home, named in the comment above it:
`tools/copy_forward.py` checks that the copies stay identical, and
`python tools/copy_forward.py --fix` rewrites them from their homes.

- chapters 3 and 4: the GPT model (`GPTModel` and its parts);
- chapter 5: reading a checkpoint (`load_checkpoint` names every tensor that
  does not fit the model);
- chapter 6: `classify_review`;
- the chat apps of ch05/06_user_interface: the page's message when the model
  file is missing.
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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::load_checkpoint
def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`).

    The book's plain `torch.save(model.state_dict(), path)` loads too: it is the
    model's part of a checkpoint, with no optimizer state and no config.
    `weights_only=True` refuses files that would run code while loading. If the
    checkpoint was saved from a model with another configuration, the error
    lists every tensor that does not fit instead of PyTorch's generic message.
    Returns the checkpoint dictionary (e.g. for its "config").
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if "model_state_dict" not in checkpoint:  # the book's bare state dict
        checkpoint = {"model_state_dict": checkpoint}
    state_dict = checkpoint["model_state_dict"]
    expected = model.state_dict()

    problems = [
        f"{name}: checkpoint {tuple(tensor.shape)}, model {tuple(expected[name].shape)}"
        for name, tensor in state_dict.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    problems += [f"{name}: missing from checkpoint" for name in expected
                 if name not in state_dict]
    problems += [f"{name}: not in this model" for name in state_dict if name not in expected]
    if problems:
        raise ValueError(
            f"checkpoint {path} does not fit this model's configuration "
            f"({len(problems)} mismatches):\n  " + "\n  ".join(problems)
        )

    if optimizer is not None and "optimizer_state_dict" not in checkpoint:
        raise ValueError(f"checkpoint {path} holds no optimizer state (saved without one)")

    model.load_state_dict(state_dict)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    return checkpoint


# Copied from ch02/01_main-chapter-code/script_helpers.py::default_device
def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )


# Copied from ch06/01_main-chapter-code/ch06.ipynb::classify_review
def classify_review(text, model, tokenizer, device, max_length=None, pad_token_id=50256):
    """Return "spam" or "not spam" for `text`, as the finetuned `model` sees it.

    The text is prepared like the training data: cut to `max_length` tokens
    (never more than the model's context) and padded to `max_length` with
    `pad_token_id`. With `max_length=None` it is only cut to the context.
    """
    input_ids = tokenizer.encode(text)
    if not input_ids:
        raise ValueError("cannot classify an empty text")
    supported_context_length = model.pos_emb.weight.shape[0]
    if max_length is None:
        max_length = min(len(input_ids), supported_context_length)
    max_length = min(max_length, supported_context_length)
    input_ids = input_ids[:max_length]
    input_ids += [pad_token_id] * (max_length - len(input_ids))

    model.eval()
    input_tensor = torch.tensor(input_ids, device=device).unsqueeze(0)  # a batch of one
    with torch.no_grad():
        logits = model(input_tensor)[:, -1, :]
    predicted_label = torch.argmax(logits, dim=-1).item()
    return "spam" if predicted_label == 1 else "not spam"


# Copied from ch05/06_user_interface/chat_helpers.py::missing_file_message
def missing_file_message(what, path, command, folder, env_var):
    """Markdown for the page: which file is missing, and how to make or point to it."""
    return (
        f"**{what} is missing:** there is no file at `{path}`.\n\n"
        f"Create it by running, in the course's folder `{folder}`,\n\n"
        f"```bash\n{command}\n```\n\n"
        f"then reload this page. To use a file elsewhere, start the app with "
        f"`{env_var}` set to its path, e.g. `{env_var}=path/to/file chainlit run app.py`."
    )


# Copied from ch05/06_user_interface/chat_helpers.py::send_text
async def send_text(text):
    """Show `text` (Markdown) as a new message of the app in the chat page."""
    import chainlit as cl  # see stream_reply

    await cl.Message(content=text).send()


# Copied from ch05/06_user_interface/chat_helpers.py::ModelAtStartup
class ModelAtStartup:
    """The app's model, loaded once, when the app starts.

    When it cannot be loaded (its file is missing, say), `problem` holds a
    message for the page instead of a traceback in the terminal, and each new
    chat tries once more: a reader who has just created the file only needs to
    reload the page. `load(*args)` raises FileNotFoundError with the page's
    message (see `missing_file_message`) when its file is missing; any other
    error (a damaged file, a checkpoint of another model) is named in a short
    message.
    """

    def __init__(self, load, *args):
        self._load, self._args = load, args
        self.model, self.problem = None, None
        self.ready()

    def ready(self):
        """True when the model is loaded (trying again if it is not yet)."""
        if self.model is None:
            try:
                self.model, self.problem = self._load(*self._args), None
            except FileNotFoundError as err:
                self.problem = str(err)
            except Exception as err:  # shown in the page, where the reader looks
                first_lines = "\n".join(str(err).splitlines()[:6])
                self.problem = (f"**The model could not be loaded** ({type(err).__name__}):"
                                f"\n\n```\n{first_lines}\n```")
        return self.model is not None

    async def greet(self, greeting):
        """Open a chat with `greeting` when the model is ready, else with what is missing."""
        await send_text(greeting if self.ready() else self.problem)

    async def explain_if_missing(self):
        """True, after telling the page what is missing, when the model is not loaded."""
        if self.ready():
            return False
        await send_text(self.problem)
        return True
