"""Code from chapters 3 to 7 that the instruction app builds on, copied unchanged.

Each definition is a copy of its home, named in the comment above it:
`tools/copy_forward.py` checks that the copies stay identical, and
`python tools/copy_forward.py --fix` rewrites them from their homes.

- chapters 3 and 4: the GPT model (`GPTModel` and its parts);
- chapter 5: text to token ids, `generate` and reading checkpoints
  (`load_trained_gpt` reads the script's file and the book's plain state dict);
- chapter 7: the prompt style, `format_input`;
- the chat apps of ch05/06_user_interface: streaming the answer token by
  token into the page, and the page's message when the model file is missing.
"""

import asyncio

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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::text_to_token_ids
def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::read_checkpoint_config
def read_checkpoint_config(path):
    """The model configuration stored in a checkpoint by `save_checkpoint`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "config" not in checkpoint:
        raise ValueError(f"checkpoint {path} has no stored model configuration")
    return checkpoint["config"]


# Copied from ch05/01_main-chapter-code/gpt_generate.py::load_trained_gpt
def load_trained_gpt(checkpoint_path, fallback_config):
    """Build a GPTModel from a checkpoint: gpt_train.py's, or the book's plain state dict.

    gpt_train.py stores the model's configuration in the checkpoint. The book's
    `torch.save(model.state_dict(), path)` stores only tensors: then
    `fallback_config` says what model they belong to, and `load_checkpoint`
    raises a ValueError naming every tensor whose shape does not fit it.
    """
    try:
        config = read_checkpoint_config(checkpoint_path)
    except ValueError:  # no stored configuration: the book's format
        config = fallback_config
    with torch.device("meta"):  # shapes only: random initial weights would be overwritten
        model = GPTModel(config)
    model.to_empty(device="cpu")  # memory, not yet filled: the checkpoint fills every tensor
    load_checkpoint(checkpoint_path, model)  # checks the shapes before it copies anything
    return model


# Copied from ch02/01_main-chapter-code/script_helpers.py::default_device
def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )


# Copied from ch07/01_main-chapter-code/ch07.ipynb::format_input
def format_input(entry):
    """The Alpaca-style prompt for one entry: a preamble, the instruction, the input.

    The "### Input:" section appears only when the entry has an input. The
    answer ("\\n\\n### Response:\\n" and the output) is appended separately, so
    the same prompt serves for training texts and for asking the model.
    """
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


# Copied from ch05/06_user_interface/chat_helpers.py::END_OF_TEXT_ID
END_OF_TEXT_ID = 50256


# Copied from ch05/06_user_interface/chat_helpers.py::generate_stream
def generate_stream(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None,
                    eos_id=None):
    """Yield the ids of up to `max_new_tokens` tokens that continue `idx` (a batch of one).

    Calling chapter 5's `generate` for one token at a time gives the same
    sampling (temperature, top-k, context cropping) and stops where it stops:
    at `eos_id`, which is not yielded.
    """
    for _ in range(max_new_tokens):
        longer = generate(model, idx, 1, context_size, temperature=temperature, top_k=top_k,
                          eos_id=eos_id)
        if longer.shape[1] == idx.shape[1]:  # generate stopped at eos_id
            return
        idx = longer
        yield idx[0, -1].item()


# Copied from ch05/06_user_interface/chat_helpers.py::decode_stream
def decode_stream(token_ids, tokenizer):
    """Yield the text of the ids in `token_ids`, piece by piece, as they arrive.

    GPT-2's tokens are bytes: a character such as "é" or an emoji may be split
    over two or more tokens, and decoding half of it gives "\\ufffd". A piece
    is held back until its last character is complete, so the page never
    shows a broken character that the next token would have repaired.
    """
    ids, shown = [], ""
    for token_id in token_ids:
        ids.append(token_id)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue
        yield text[len(shown):]
        shown = text
    text = tokenizer.decode(ids)  # what was held back when the stream ended
    if len(text) > len(shown):
        yield text[len(shown):]


# Copied from ch05/06_user_interface/chat_helpers.py::stream_reply
async def stream_reply(pieces, empty_note="(The model's answer is empty.)"):
    """Show the text pieces of the iterator `pieces` in one new chat message.

    Each piece is computed in a worker thread (a model step takes from
    milliseconds to seconds), so Chainlit's event loop keeps serving the page
    and every piece appears as soon as it exists. Returns the whole text.
    """
    # Imported here, not at the top: the token functions above then work without
    # Chainlit, whose import takes seconds and writes .chainlit/ into the working folder.
    import chainlit as cl

    reply = cl.Message(content="")
    pieces = iter(pieces)
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        await reply.stream_token(piece)
    if not reply.content.strip():
        reply.content = empty_note
    await reply.send()
    return reply.content


# Copied from ch05/06_user_interface/chat_helpers.py::stream_continuation
async def stream_continuation(text, model, tokenizer, device, max_new_tokens=50,
                              temperature=1.0, top_k=50):
    """Continue `text` with `model` in a new chat message, token by token; return the answer.

    The defaults sample as chapter 5 shows it (section 5.3); temperature 0
    with top_k None is greedy decoding, as chapter 7 answers instructions.
    """
    idx = text_to_token_ids(text, tokenizer).to(device)
    token_ids = generate_stream(model, idx, max_new_tokens,
                                context_size=model.pos_emb.weight.shape[0],
                                temperature=temperature, top_k=top_k, eos_id=END_OF_TEXT_ID)
    return await stream_reply(decode_stream(token_ids, tokenizer))


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
