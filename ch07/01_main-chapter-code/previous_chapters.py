"""Code from chapters 3 to 6 that chapter 7 builds on, copied unchanged.

Each definition below is a copy of its home (named in the comment above it);
`tools/copy_forward.py` checks that the copies stay identical, and
`python tools/copy_forward.py --fix` rewrites them from their homes.

- chapters 3 and 4: the GPT model (`GPTModel` and its parts) and greedy generation;
- chapter 5: text/token-id helpers, the losses, the training loop that counts
  tokens (`train_model_simple`), the loss plot, `generate` with temperature,
  top-k and an end-of-text id, saving and loading checkpoints, and copying
  OpenAI's GPT-2 weights into `GPTModel`.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
from downloads import atomic_write
from gpt_download import download_and_load_gpt2
from matplotlib.ticker import MaxNLocator


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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::text_to_token_ids
def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::token_ids_to_text
def token_ids_to_text(token_ids, tokenizer):
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids to text."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


# Copied from ch05/01_main-chapter-code/ch05.ipynb::calc_loss_batch
def calc_loss_batch(input_batch, target_batch, model, device):
    """Mean cross-entropy of the model's next-token predictions on one batch."""
    input_batch = input_batch.to(device)
    target_batch = target_batch.to(device)
    logits = model(input_batch)
    # cross_entropy wants (N, classes) and (N,): merge the batch and token dims
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


# Copied from ch05/01_main-chapter-code/ch05.ipynb::calc_loss_loader
def calc_loss_loader(data_loader, model, device, num_batches=None):
    """Average batch loss over the first `num_batches` batches (all by default)."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total_loss = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total_loss += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total_loss / num_batches


# Copied from ch05/01_main-chapter-code/ch05.ipynb::evaluate_model
def evaluate_model(model, train_loader, val_loader, device, eval_iter):
    """Training and validation loss on `eval_iter` batches each, without dropout."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


# Copied from ch05/01_main-chapter-code/ch05.ipynb::generate_and_print_sample
def generate_and_print_sample(model, tokenizer, device, start_context):
    """Print a greedy 50-token continuation of `start_context` on one line."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(
            model=model, idx=encoded, max_new_tokens=50, context_size=context_size
        )
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    print(decoded_text.replace("\n", " "))  # one line, however many newlines
    model.train()


# Copied from ch05/01_main-chapter-code/ch05.ipynb::train_model_simple
def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                       eval_freq, eval_iter, start_context, tokenizer):
    """Pretrain `model` with next-token prediction; return the loss history.

    Every `eval_freq` optimizer steps (starting with the first) we measure the
    training and validation loss on `eval_iter` batches and record how many
    tokens the model has seen so far. After each epoch we print a sample.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()  # dropout on
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()  # gradients from the previous step must not add up
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            # numel() is a plain int from the shape: no need to wait for the device
            tokens_seen += input_batch.numel()
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen


# Copied from ch05/01_main-chapter-code/ch05.ipynb::plot_losses
def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses):
    """Plot both losses against epochs, with tokens seen on a second x-axis."""
    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_losses, label="Training loss")
    ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only

    # A second x-axis sharing the y-axis: the same points placed by tokens seen.
    # The invisible plot only sets the axis range so the two scales line up.
    ax2 = ax1.twiny()
    ax2.plot(tokens_seen, train_losses, alpha=0)
    ax2.set_xlabel("Tokens seen")

    fig.tight_layout()
    return fig


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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::save_checkpoint
def save_checkpoint(path, model, optimizer=None, config=None):
    """Save the model (and optimizer state and config, if given) to `path`.

    torch.save writes to a temporary file next to `path` that is then renamed:
    a crash halfway never leaves a truncated checkpoint behind. Everything
    stored is tensors, numbers and strings, so `weights_only=True` can load it.
    """
    path = Path(path)
    checkpoint = {"model_state_dict": model.state_dict()}
    if optimizer is not None:
        checkpoint["optimizer_state_dict"] = optimizer.state_dict()
    if config is not None:
        checkpoint["config"] = dict(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:  # SIGTERM too; the mode a plain open() gives
        torch.save(checkpoint, f)


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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::assign_checked
def assign_checked(param, values, name):
    """Copy `values` (a NumPy array) into the model parameter `param`, in place.

    Checking the shape first turns a mismatched configuration into an error
    that names the parameter, instead of a silent broadcast or a cryptic one.
    """
    values = torch.as_tensor(values, dtype=param.dtype)
    if tuple(param.shape) != tuple(values.shape):
        raise ValueError(
            f"shape mismatch for {name}: the model has {tuple(param.shape)}, "
            f"the pretrained weights have {tuple(values.shape)}"
        )
    with torch.no_grad():
        param.copy_(values)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::load_weights_into_gpt
def load_weights_into_gpt(gpt, params):
    """Copy OpenAI's GPT-2 weights (from `download_and_load_gpt2`) into `gpt`.

    `gpt` must be built with GPT-2's configuration: qkv_bias=True and the same
    sizes as the checkpoint. OpenAI's linear layers store weights as
    [in, out]; nn.Linear stores [out, in], hence the transposes. GPT-2 reuses
    its token embedding as the output layer (weight tying), so `wte` goes into
    both `tok_emb` and `out_head`.
    """
    if len(params["blocks"]) != len(gpt.trf_blocks):
        raise ValueError(
            f"the pretrained weights have {len(params['blocks'])} transformer blocks, "
            f"the model has {len(gpt.trf_blocks)} (n_layers)"
        )
    assign_checked(gpt.pos_emb.weight, params["wpe"], "pos_emb.weight")
    assign_checked(gpt.tok_emb.weight, params["wte"], "tok_emb.weight")

    for b, (block, weights) in enumerate(zip(gpt.trf_blocks, params["blocks"], strict=True)):
        att, prefix = block.att, f"trf_blocks[{b}]"
        if att.W_query.bias is None:
            raise ValueError("GPT-2 has biases in its query, key and value projections: "
                             "build the model with qkv_bias=True")

        # c_attn holds the query, key and value projections side by side
        q_w, k_w, v_w = torch.as_tensor(weights["attn"]["c_attn"]["w"]).chunk(3, dim=-1)
        q_b, k_b, v_b = torch.as_tensor(weights["attn"]["c_attn"]["b"]).chunk(3, dim=-1)
        assign_checked(att.W_query.weight, q_w.T, f"{prefix}.att.W_query.weight")
        assign_checked(att.W_key.weight, k_w.T, f"{prefix}.att.W_key.weight")
        assign_checked(att.W_value.weight, v_w.T, f"{prefix}.att.W_value.weight")
        assign_checked(att.W_query.bias, q_b, f"{prefix}.att.W_query.bias")
        assign_checked(att.W_key.bias, k_b, f"{prefix}.att.W_key.bias")
        assign_checked(att.W_value.bias, v_b, f"{prefix}.att.W_value.bias")

        c_proj = weights["attn"]["c_proj"]
        assign_checked(att.out_proj.weight, c_proj["w"].T, f"{prefix}.att.out_proj.weight")
        assign_checked(att.out_proj.bias, c_proj["b"], f"{prefix}.att.out_proj.bias")

        fc_in, fc_out = block.ff.layers[0], block.ff.layers[2]
        c_fc, mlp_proj = weights["mlp"]["c_fc"], weights["mlp"]["c_proj"]
        assign_checked(fc_in.weight, c_fc["w"].T, f"{prefix}.ff.layers[0].weight")
        assign_checked(fc_in.bias, c_fc["b"], f"{prefix}.ff.layers[0].bias")
        assign_checked(fc_out.weight, mlp_proj["w"].T, f"{prefix}.ff.layers[2].weight")
        assign_checked(fc_out.bias, mlp_proj["b"], f"{prefix}.ff.layers[2].bias")

        assign_checked(block.norm1.scale, weights["ln_1"]["g"], f"{prefix}.norm1.scale")
        assign_checked(block.norm1.shift, weights["ln_1"]["b"], f"{prefix}.norm1.shift")
        assign_checked(block.norm2.scale, weights["ln_2"]["g"], f"{prefix}.norm2.scale")
        assign_checked(block.norm2.shift, weights["ln_2"]["b"], f"{prefix}.norm2.shift")

    assign_checked(gpt.final_norm.scale, params["g"], "final_norm.scale")
    assign_checked(gpt.final_norm.shift, params["b"], "final_norm.shift")
    assign_checked(gpt.out_head.weight, params["wte"], "out_head.weight")


# Copied from ch05/01_main-chapter-code/gpt_generate.py::gpt_config_from_hparams
def gpt_config_from_hparams(settings):
    """Our GPTModel configuration for OpenAI's hparams.json.

    Loading pretrained weights always needs qkv_bias=True and GPT-2's full
    context; dropout is off because we only run the model.
    """
    return {
        "vocab_size": settings["n_vocab"],
        "context_length": settings["n_ctx"],
        "emb_dim": settings["n_embd"],
        "n_heads": settings["n_head"],
        "n_layers": settings["n_layer"],
        "drop_rate": 0.0,
        "qkv_bias": True,
    }


# Copied from ch05/01_main-chapter-code/gpt_generate.py::load_openai_gpt2
def load_openai_gpt2(model_size, models_dir):
    """Build a GPTModel holding OpenAI's GPT-2 of `model_size`."""
    settings, params = download_and_load_gpt2(model_size, models_dir)
    model = GPTModel(gpt_config_from_hparams(settings))
    load_weights_into_gpt(model, params)
    return model


# Copied from ch02/01_main-chapter-code/script_helpers.py::default_device
def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )
