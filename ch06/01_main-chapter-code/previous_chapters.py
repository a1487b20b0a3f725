"""Code from chapters 3-5 that chapter 6 builds on.

Copied unchanged from the chapters that introduce it: the GPT model (chapters
3 and 4), and from chapter 5 the helpers that turn text into token ids and back,
save and load checkpoints, download OpenAI's GPT-2 and copy its weights into
our model; homes: ch05.ipynb, gpt_train.py, gpt_download.py,
gpt_generate.py and gpt_utils.py in ch05/01_main-chapter-code. A test checks
that every copy is byte-identical to its home, so do not edit these
definitions here: change them at home and re-run
`python tools/copy_forward.py --fix`.

Reading OpenAI's checkpoints needs TensorFlow (`pip install tensorflow-cpu`);
it is imported only when a checkpoint is read.
"""

import json
import os
import re
from pathlib import Path

import torch
import torch.nn as nn
from downloads import GPT2_BPE_FILES, atomic_write, download_file


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


# Copied from ch05/01_main-chapter-code/ch05.ipynb::text_to_token_ids
def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::token_ids_to_text
def token_ids_to_text(token_ids, tokenizer):
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids to text."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


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


# Copied from ch02/01_main-chapter-code/script_helpers.py::default_device
def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )


# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_MODEL_SIZES
GPT2_MODEL_SIZES = ("124M", "355M", "774M", "1558M")


# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_BASE_URL
GPT2_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"


# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_BACKUP_BASE_URL
GPT2_BACKUP_BASE_URL = "https://f001.backblazeb2.com/file/LLMs-from-scratch/gpt2"


# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_FILES
GPT2_FILES = (
    "checkpoint",                      # names the checkpoint ("model.ckpt")
    "encoder.json",                    # BPE vocabulary: token string -> id
    "hparams.json",                    # n_vocab, n_ctx, n_embd, n_head, n_layer
    "model.ckpt.data-00000-of-00001",  # the weights themselves (0.5 to 6 GB)
    "model.ckpt.index",                # where each variable sits in the data file
    "model.ckpt.meta",                 # the TensorFlow graph
    "vocab.bpe",                       # BPE merge rules
)


# Copied from ch05/01_main-chapter-code/gpt_download.py::KNOWN_SHA256
KNOWN_SHA256 = {name: sha256 for name, (_, sha256) in GPT2_BPE_FILES.items()}


# Copied from ch05/01_main-chapter-code/gpt_download.py::DamagedFileError
class DamagedFileError(RuntimeError):
    """A GPT-2 file is not what its name says; it has been removed."""


# Copied from ch05/01_main-chapter-code/gpt_download.py::fetch_checked
def fetch_checked(model_size, path):
    """Download one release file (if missing) and check it; a damaged one is fetched again."""
    for attempt in (1, 2):
        download_file(
            f"{GPT2_BASE_URL}/{model_size}/{path.name}",
            path,
            sha256=KNOWN_SHA256.get(path.name),
            backup_urls=[f"{GPT2_BACKUP_BASE_URL}/{model_size}/{path.name}"],
        )
        problem = gpt2_file_problem(path)
        if problem is None:
            return path
        path.unlink()
        message = f"{path} was damaged ({problem}) and has been removed"
        if attempt == 2:
            raise DamagedFileError(f"{message}, twice: the copy on the server or in the "
                                   "mirror is damaged too; replace it by hand")
        print(f"{message}; downloading it again")


# TensorFlow's checkpoint index is a table file that ends with this magic number.
# Copied from ch05/01_main-chapter-code/gpt_download.py::TF_TABLE_MAGIC
TF_TABLE_MAGIC = bytes.fromhex("57fb808b247547db")


# Copied from ch05/01_main-chapter-code/gpt_download.py::DATA_FILE
DATA_FILE = "model.ckpt.data-00000-of-00001"


# Copied from ch05/01_main-chapter-code/gpt_download.py::HTML_STARTS
HTML_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<error", b"<head", b"<body")


# Copied from ch05/01_main-chapter-code/gpt_download.py::gpt2_file_problem
def gpt2_file_problem(path):
    """What is wrong with a release file, or None when it can be what its name says."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(512)
    if head.lstrip().lower().startswith(HTML_STARTS):
        return "it is an HTML or XML page, probably a server's error message"
    if path.name == "hparams.json":
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
            missing = [key for key in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
                       if not isinstance(settings.get(key), int)]
        except (ValueError, AttributeError):
            return "it is not valid JSON"
        if missing:
            return f"it lacks the hyperparameters {', '.join(missing)}"
    elif path.name == "checkpoint" and b"model_checkpoint_path" not in head:
        return "it does not name a checkpoint (model_checkpoint_path)"
    elif path.name == "model.ckpt.index":
        with open(path, "rb") as f:
            f.seek(-len(TF_TABLE_MAGIC), os.SEEK_END)
            if f.read() != TF_TABLE_MAGIC:
                return "it does not end like a TensorFlow checkpoint index (truncated?)"
    return None


# Copied from ch05/01_main-chapter-code/gpt_download.py::download_and_load_gpt2
def download_and_load_gpt2(model_size, models_dir="gpt2"):
    """Get GPT-2 `model_size` into `models_dir/model_size` and read it.

    Returns `(settings, params)`: the hyperparameters from hparams.json and
    the weights as nested dictionaries of NumPy arrays (see
    `load_gpt2_params_from_tf_ckpt`). Files already present are not fetched
    again, but they are checked like new ones.
    """
    if model_size not in GPT2_MODEL_SIZES:
        raise ValueError(
            f"unknown GPT-2 model size {model_size!r}; "
            f"valid sizes are {', '.join(GPT2_MODEL_SIZES)}"
        )
    model_dir = Path(models_dir) / model_size
    for filename in GPT2_FILES:
        fetch_checked(model_size, model_dir / filename)

    settings = json.loads((model_dir / "hparams.json").read_text(encoding="utf-8"))
    try:
        params = load_gpt2_params_from_tf_ckpt(model_dir, settings)
    except DamagedFileError as err:
        # Only reading the weights shows a truncated data file: fetch it once more.
        print(f"{err}; downloading it again")
        fetch_checked(model_size, model_dir / DATA_FILE)
        params = load_gpt2_params_from_tf_ckpt(model_dir, settings)
    return settings, params


# Copied from ch05/01_main-chapter-code/gpt_download.py::import_tensorflow
def import_tensorflow():
    """Import TensorFlow, or explain how to get it."""
    # Hide TensorFlow's start-up notes about CPU instructions and GPUs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            "Reading OpenAI's GPT-2 checkpoints needs TensorFlow, which is not "
            "installed: run `pip install tensorflow-cpu` (or `tensorflow`)."
        ) from err
    return tf


# Copied from ch05/01_main-chapter-code/gpt_download.py::load_gpt2_params_from_tf_ckpt
def load_gpt2_params_from_tf_ckpt(model_dir, settings):
    """Read the TensorFlow checkpoint in `model_dir` into nested dictionaries.

    OpenAI's variables are named like `model/h3/attn/c_attn/w`. We keep the
    path after `model/` as dictionary keys and collect the `h<i>` parts in a
    list, so the result looks like:

        {"wte": ..., "wpe": ..., "g": ..., "b": ...,          # ln_f's g and b
         "blocks": [{"attn": {"c_attn": {"w": ..., "b": ...}, "c_proj": {...}},
                     "mlp": {"c_fc": {...}, "c_proj": {...}},
                     "ln_1": {"g": ..., "b": ...}, "ln_2": {...}}, ...]}
    """
    tf = import_tensorflow()
    ckpt_path = tf.train.latest_checkpoint(str(model_dir))
    if ckpt_path is None:
        raise FileNotFoundError(f"no TensorFlow checkpoint found in {model_dir}")
    reader = tf.train.load_checkpoint(ckpt_path)

    params = {"blocks": [{} for _ in range(settings["n_layer"])]}
    for name, _ in tf.train.list_variables(ckpt_path):
        try:
            array = reader.get_tensor(name)
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, IndexError) as err:
            # The index is fine (checked) but the data file ends too early or is corrupt
            # (TensorFlow raises IndexError "Read less bytes than requested" for a short file).
            data_file = Path(model_dir) / DATA_FILE
            data_file.unlink(missing_ok=True)
            raise DamagedFileError(
                f"{data_file} was damaged ({type(err).__name__} reading {name}: "
                "truncated or corrupt) and has been removed"
            ) from None
        keys = name.split("/")[1:]  # drop the leading "model"
        if keys[-1] == "w":
            # OpenAI stored its linear layers as 1x1 convolutions: drop that axis
            array = array[0]

        target = params
        block = re.fullmatch(r"h(\d+)", keys[0])
        if block:
            target = params["blocks"][int(block.group(1))]
            keys = keys[1:]
        elif keys[0] == "ln_f":
            keys = keys[1:]  # the final layer norm's g and b sit at the top level
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = array
    return params


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
