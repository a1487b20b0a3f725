"""Code from chapters 3-7 and the chapter 6 experiments that train_gpt.py builds on.

Copied unchanged from the places that introduce it: the GPT model (chapters
3 and 4), downloading OpenAI's GPT-2 and loading its weights (chapter 5),
chapter 6's settings and its SMS spam data (gpt_class_finetune.py, for
train_bert_hf_spam.py), LoRA (appendix E's code, whose
home is chapter 7's exercise_experiments.py), and the experiment code of
../02_bonus_additional-experiments/additional_experiments.py (the classifier
with its options, the training loop, the results CSV). A test checks that
every copy is byte-identical to its home, so do not edit these definitions
here: change them at home and re-run `python tools/copy_forward.py --fix`.

Reading OpenAI's checkpoints needs TensorFlow (`pip install tensorflow-cpu`);
it is imported only when a checkpoint is read.
"""


import argparse
import csv
import hashlib
import io
import json
import math
import os
import re
import time
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import tiktoken
import torch
import torch.nn as nn
from downloads import GPT2_BPE_FILES, atomic_write, cache_gpt2_tokenizer_files, download_file
from script_helpers import (
    add_device_argument,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    synchronize,
    writable_file,
)
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm


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


# Embedding size, heads and blocks of OpenAI's four GPT-2 sizes: the shape a
# --checkpoint without a stored configuration is read with.
# Copied from ch05/01_main-chapter-code/gpt_generate.py::GPT2_SHAPES
GPT2_SHAPES = {
    "124M": {"emb_dim": 768, "n_heads": 12, "n_layers": 12},
    "355M": {"emb_dim": 1024, "n_heads": 16, "n_layers": 24},
    "774M": {"emb_dim": 1280, "n_heads": 20, "n_layers": 36},
    "1558M": {"emb_dim": 1600, "n_heads": 25, "n_layers": 48},
}


# Copied from ch06/01_main-chapter-code/ch06.ipynb::SMS_SPAM_URL
SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"


# sha256 of the extracted SMSSpamCollection file (zips of the same data differ)
# Copied from ch06/01_main-chapter-code/ch06.ipynb::SMS_SPAM_SHA256
SMS_SPAM_SHA256 = "edc1f2ca36319ca36c6f80fede2f6ae5f81335289352485f3924df077ec20266"


# Every released GPT-2 size reads 1,024 tokens at most.
# Copied from ch06/01_main-chapter-code/gpt_class_finetune.py::GPT2_CONTEXT_LENGTH
GPT2_CONTEXT_LENGTH = 1024


# Copied from ch06/01_main-chapter-code/gpt_class_finetune.py::TEST_MODE_EXAMPLES
TEST_MODE_EXAMPLES = 16  # per split


# Copied from ch06/01_main-chapter-code/gpt_class_finetune.py::NUM_CLASSES
NUM_CLASSES = 2  # 0: not spam ("ham"), 1: spam


# Copied from ch06/01_main-chapter-code/ch06.ipynb::file_sha256
def file_sha256(path):
    """The sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Copied from ch06/01_main-chapter-code/ch06.ipynb::download_and_unzip_spam_data
def download_and_unzip_spam_data(url, zip_path, extracted_path, data_file_path):
    """Get the SMS Spam Collection into `data_file_path`; return that path.

    The zip is downloaded to `zip_path` with the course's download helper
    (mirror, backup, atomic), and its `SMSSpamCollection` member is written to
    `data_file_path` inside the folder `extracted_path`. We stream that one
    member ourselves instead of calling `extractall`: no name inside the
    archive ever becomes a path on disk (an archive cannot write outside
    the folder), and the data goes to a temporary file that is renamed only
    once its sha256 matches, so a damaged zip never leaves a half-written
    data file behind. Nothing is done when the file is already in place; a
    file there that differs from the published one is the reader's own,
    used as it is and never replaced.
    """
    data_file_path = Path(data_file_path)
    if data_file_path.is_file():
        if file_sha256(data_file_path) == SMS_SPAM_SHA256:
            print(f"{data_file_path} already exists. Skipping download and extraction.")
        else:
            print(f"Using {data_file_path} as it is: it differs from the published "
                  "SMSSpamCollection (delete it to get the published one).")
        return data_file_path

    zip_path = download_file(url, zip_path)
    Path(extracted_path).mkdir(parents=True, exist_ok=True)
    data_file_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(data_file_path, "wb") as tmp:  # renamed into place only at the end
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = [name for name in archive.namelist()
                           if name.rsplit("/", 1)[-1] == "SMSSpamCollection"]
                if not members:
                    raise ValueError(f"{zip_path} holds no SMSSpamCollection file")
                with archive.open(members[0]) as member:
                    for chunk in iter(lambda: member.read(1 << 20), b""):
                        tmp.write(chunk)
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError) as err:
            raise ValueError(f"{zip_path} is not a usable zip file ({err}); "
                             "delete it and run again to download it afresh") from None
        tmp.flush()
        if file_sha256(tmp.name) != SMS_SPAM_SHA256:
            raise ValueError(f"the SMSSpamCollection in {zip_path} is not the expected file "
                             "(sha256 mismatch); delete the zip and run again")
    print(f"File downloaded and saved as {data_file_path}")
    return data_file_path


# Copied from ch06/01_main-chapter-code/ch06.ipynb::create_balanced_dataset
def create_balanced_dataset(df):
    """As many "ham" rows as "spam" rows; the labels stay "ham" and "spam".

    The collection holds 4,825 normal messages and only 747 spam messages. We
    keep every spam message and a random sample (seeded, reproducible) of the
    same number of normal ones, so a classifier cannot do well by always
    answering "not spam".
    """
    unknown = set(df["Label"]) - {"ham", "spam"}
    if unknown:
        raise ValueError(f"unexpected labels {sorted(unknown)}: expected 'ham' and 'spam'")
    spam = df[df["Label"] == "spam"]
    ham_subset = df[df["Label"] == "ham"].sample(len(spam), random_state=123)
    return pd.concat([ham_subset, spam])


# Copied from ch06/01_main-chapter-code/ch06.ipynb::random_split
def random_split(df, train_frac, validation_frac):
    """Shuffle `df` (seeded) and cut it into training, validation and test parts.

    The first `train_frac` of the rows train the model, the next
    `validation_frac` tell us how training goes, and the rest stay unseen
    until the final test.
    """
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    train_end = int(len(df) * train_frac)
    validation_end = train_end + int(len(df) * validation_frac)
    return df[:train_end], df[train_end:validation_end], df[validation_end:]


# Copied from ch06/01_main-chapter-code/gpt_class_finetune.py::write_splits
def write_splits(data_file_path, data_dir):
    """Balance and split the collection; write train/validation/test CSVs atomically."""
    df = pd.read_csv(data_file_path, sep="\t", header=None, names=["Label", "Text"])
    balanced_df = create_balanced_dataset(df)
    balanced_df["Label"] = balanced_df["Label"].map({"ham": 0, "spam": 1})
    splits = random_split(balanced_df, 0.7, 0.1)
    paths = []
    for name, split in zip(("train", "validation", "test"), splits, strict=True):
        path = Path(data_dir) / f"{name}.csv"
        with atomic_write(path, newline="") as f:
            split.to_csv(f, index=None)
        paths.append(path)
    return paths


# Copied from ch06/01_main-chapter-code/gpt_class_finetune.py::context_length_arg
def context_length_arg(value):
    """--context-length: one of the two named choices or a positive token count."""
    if value in ("longest_training_example", "model_context_length"):
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= GPT2_CONTEXT_LENGTH:
        raise argparse.ArgumentTypeError(
            f"expected longest_training_example, model_context_length or a number "
            f"from 1 to {GPT2_CONTEXT_LENGTH}, got {value!r}")
    return value


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LoRALayer
class LoRALayer(torch.nn.Module):
    """The low-rank update (alpha / rank) * x A B that LoRA adds to a frozen layer.

    A (in_dim x rank) starts random and B (rank x out_dim) starts at zero, so the
    update is zero until training changes B.
    """

    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.A = torch.nn.Parameter(torch.empty(in_dim, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha
        self.scale = alpha / rank  # the printed book uses alpha alone (see above)

    def forward(self, x):
        return self.scale * (x @ self.A @ self.B)

    def extra_repr(self):  # shown by print(model)
        in_dim, out_dim = self.A.shape[0], self.B.shape[1]
        return f"in_dim={in_dim}, out_dim={out_dim}, rank={self.rank}, alpha={self.alpha}"


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LinearWithLoRA
class LinearWithLoRA(torch.nn.Module):
    """An nn.Linear `linear` plus a LoRA update of the given rank and alpha."""

    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        # A and B live where the layer lives (CPU, GPU, or "meta" when only counting)
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha).to(
            device=linear.weight.device, dtype=linear.weight.dtype
        )

    def forward(self, x):
        return self.linear(x) + self.lora(x)


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::replace_linear_with_lora
def replace_linear_with_lora(model, rank, alpha):
    """Wrap every nn.Linear inside `model` (at any depth) in a LinearWithLoRA, in place."""
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LinearWithLoRAMerged
class LinearWithLoRAMerged(LinearWithLoRA):
    """LinearWithLoRA computed with the merged weight W + scale * (A B)^T in the forward pass.

    The same parameters and, up to rounding, the same outputs as LinearWithLoRA
    (the book repository's `--trainable_layers lora_alternative`): one matrix
    product with the input instead of the frozen layer's and LoRA's own.
    """

    def forward(self, x):
        lora = self.lora
        weight = self.linear.weight + lora.scale * (lora.A @ lora.B).T
        return torch.nn.functional.linear(x, weight, self.linear.bias)


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::replace_linear_with_lora_merged
def replace_linear_with_lora_merged(model, rank, alpha):
    """Wrap every nn.Linear inside `model` (at any depth) in a LinearWithLoRAMerged, in place."""
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            setattr(model, name, LinearWithLoRAMerged(module, rank, alpha))
        else:
            replace_linear_with_lora_merged(module, rank, alpha)


# --test-mode with --weights random: a tiny GPT with GPT-2's vocabulary and
# context, three blocks so that "last_two_blocks" differs from "all".
# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::EXPERIMENT_TEST_CONFIG
EXPERIMENT_TEST_CONFIG = {**GPT_CONFIG_124M, "emb_dim": 32, "n_heads": 2, "n_layers": 3,
                          "drop_rate": 0.0, "qkv_bias": True}


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::TRAINABLE_LAYERS
TRAINABLE_LAYERS = ("last_layer", "last_block", "last_two_blocks", "all", "lora",
                    "lora_alternative")


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::GPT2_BOOK_SIZE_NAMES
GPT2_BOOK_SIZE_NAMES = {
    "gpt2-small (124M)": "124M",
    "gpt2-medium (355M)": "355M",
    "gpt2-large (774M)": "774M",
    "gpt2-xl (1558M)": "1558M",
}


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::TOKEN_POSITIONS
TOKEN_POSITIONS = ("first", "last", "flexible")


# The columns of one results row, in order.
# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::EXPERIMENT_FIELDS
EXPERIMENT_FIELDS = (
    "script", "model_size", "weights", "trainable_layers", "lora_rank", "lora_alpha",
    "trainable_token_pos", "average_embeddings", "context_length", "no_padding",
    "batch_size", "accumulation_steps", "disable_causal_mask", "ignore_index",
    "num_epochs", "learning_rate", "seed", "test_mode", "device", "trainable_params",
    "train_acc", "val_acc", "test_acc", "train_time_s",
)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::ClassificationDataset
class ClassificationDataset(Dataset):
    """Texts and labels from a CSV file as (token ids, label, number of real tokens).

    Like chapter 6's `SpamDataset`, but it also remembers how many tokens of
    each padded row are real (for --trainable-token-pos flexible and
    --average-embeddings), can leave the rows unpadded (--no-padding, batches
    of one), and reads the columns text and label in any capitalisation
    (chapter 6's CSVs say Text and Label, the IMDB ones text and label).
    Rows are cut to `max_length` tokens when it is given, and always to the
    model's `context_length` (when given): IMDB reviews can be longer.
    """

    def __init__(self, csv_file, tokenizer, max_length=None, pad_token_id=50256,
                 no_padding=False, context_length=None):
        data = pd.read_csv(csv_file, keep_default_na=False)
        columns = {name.lower(): name for name in data.columns}
        missing = [name for name in ("text", "label") if name not in columns]
        if missing:
            raise ValueError(f"{csv_file} lacks the column(s) {', '.join(missing)}: "
                             "expected a header with text and label")
        self.labels = [int(label) for label in data[columns["label"]]]
        encoded = [tokenizer.encode(text) for text in data[columns["text"]]]
        limits = [length for length in (max_length, context_length) if length is not None]
        if limits:
            encoded = [ids[:min(limits)] for ids in encoded]
        if any(not ids for ids in encoded):
            raise ValueError(f"{csv_file} holds an empty text")
        self.num_tokens = [len(ids) for ids in encoded]
        self.max_length = max(self.num_tokens) if max_length is None else max_length
        if not no_padding:
            encoded = [ids + [pad_token_id] * (self.max_length - len(ids)) for ids in encoded]
        self.encoded_texts = encoded

    def __getitem__(self, index):
        return (torch.tensor(self.encoded_texts[index], dtype=torch.long),
                torch.tensor(self.labels[index], dtype=torch.long),
                torch.tensor(self.num_tokens[index], dtype=torch.long))

    def __len__(self):
        return len(self.labels)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::build_gpt
def build_gpt(model_size, weights="pretrained", models_dir="gpt2", seed=123, test_mode=False):
    """The GPT of --model-size with OpenAI's weights or random ones, and its configuration.

    Random weights use the pretrained model's configuration (full context,
    query/key/value biases, no dropout), so the two differ only in where the
    weights come from. --test-mode with random weights builds a tiny model.
    """
    if weights == "random":
        shape = EXPERIMENT_TEST_CONFIG if test_mode else GPT2_SHAPES[model_size]
        config = {**GPT_CONFIG_124M, "context_length": GPT2_CONTEXT_LENGTH, "drop_rate": 0.0,
                  "qkv_bias": True, "emb_dim": shape["emb_dim"], "n_heads": shape["n_heads"],
                  "n_layers": shape["n_layers"]}
        torch.manual_seed(seed)
        return GPTModel(config), config
    settings, params = download_and_load_gpt2(model_size, models_dir)
    config = gpt_config_from_hparams(settings)
    model = GPTModel(config)
    load_weights_into_gpt(model, params)
    return model, config


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::configure_trainable_layers  # noqa: E501
def configure_trainable_layers(model, trainable_layers, lora_rank=16, lora_alpha=16):
    """Give `model` a two-class head and leave trainable only what `trainable_layers` says.

    last_layer: the new head only; last_block: also the last transformer block
    and the final layer norm (the chapter's choice); last_two_blocks: also the
    block before; all: everything; lora: every weight frozen, the new head
    included, and a trainable LoRA update of rank `lora_rank` added to every
    nn.Linear (appendix E); lora_alternative: the same with LinearWithLoRAMerged,
    which adds the update to the frozen weight in the forward pass. The head
    is seeded, so runs are reproducible.
    """
    if trainable_layers not in TRAINABLE_LAYERS:
        raise ValueError(f"trainable_layers must be one of {TRAINABLE_LAYERS}, "
                         f"got {trainable_layers!r}")
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(model.out_head.in_features, NUM_CLASSES)
    if trainable_layers in ("lora", "lora_alternative"):
        model.out_head.requires_grad_(False)
        replace = (replace_linear_with_lora if trainable_layers == "lora"
                   else replace_linear_with_lora_merged)
        replace(model, lora_rank, lora_alpha)
        return model
    blocks = {"last_layer": 0, "last_block": 1, "last_two_blocks": 2}.get(trainable_layers, 0)
    for block in model.trf_blocks[len(model.trf_blocks) - blocks:]:
        block.requires_grad_(True)
    if blocks:
        model.final_norm.requires_grad_(True)
    return model


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::disable_causal_mask
def disable_causal_mask(model):
    """Let every token attend to every other one, later ones included.

    Each attention module hides later tokens with its `mask` buffer (ones
    above the diagonal); an all-zero mask hides nothing.
    """
    for block in model.trf_blocks:
        block.att.mask.zero_()
    return model


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::class_logits
def class_logits(model, input_batch, num_tokens, token_pos="last", average_embeddings=False):
    """The (batch, classes) logits the classifier decides from.

    The model gives class logits at every position. "last" reads the last
    position (padding included, as in the chapter), "first" the first one,
    "flexible" each text's last real token. With `average_embeddings`, the
    logits are averaged over each text's real tokens instead: the head is
    linear, so that equals applying it to the averaged final embeddings.
    """
    logits = model(input_batch)  # (batch, tokens, classes)
    rows = torch.arange(logits.shape[0], device=logits.device)
    num_tokens = num_tokens.to(logits.device)
    if average_embeddings:
        positions = torch.arange(logits.shape[1], device=logits.device)
        real = (positions[None, :] < num_tokens[:, None]).to(logits.dtype)
        return (logits * real[:, :, None]).sum(dim=1) / num_tokens[:, None]
    if token_pos == "first":
        return logits[:, 0, :]
    if token_pos == "flexible":
        return logits[rows, num_tokens - 1, :]
    return logits[:, -1, :]


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::experiment_loss
def experiment_loss(batch, model, device, token_pos="last", average_embeddings=False,
                    ignore_index=-100):
    """Cross-entropy of one batch's class logits (targets equal to `ignore_index` left out).

    `token_pos` and `average_embeddings` choose the logits as `class_logits` does.
    """
    input_batch, target_batch, num_tokens = (t.to(device) for t in batch)
    logits = class_logits(model, input_batch, num_tokens, token_pos, average_embeddings)
    return torch.nn.functional.cross_entropy(logits, target_batch, ignore_index=ignore_index)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::experiment_accuracy
def experiment_accuracy(data_loader, model, device, num_batches=None, token_pos="last",
                        average_embeddings=False):
    """Share of correctly classified texts in the first `num_batches` batches (all by default)."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        progress = tqdm(data_loader, total=num_batches, desc="accuracy", leave=False)
        for i, batch in enumerate(progress):
            if i >= num_batches:
                break
            input_batch, target_batch, num_tokens = (t.to(device) for t in batch)
            logits = class_logits(model, input_batch, num_tokens, token_pos, average_embeddings)
            correct += (logits.argmax(dim=-1) == target_batch).sum().item()
            seen += target_batch.shape[0]
        progress.close()
    return correct / seen


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::experiment_loss_loader
def experiment_loss_loader(data_loader, model, device, num_batches, **loss_options):
    """Average batch loss over the first `num_batches` batches, without dropout.

    `loss_options` are `experiment_loss`'s keyword arguments.
    """
    model.eval()
    num_batches = min(num_batches, len(data_loader))
    total = 0.0
    with torch.no_grad():
        for i, batch in enumerate(data_loader):
            if i >= num_batches:
                break
            total += experiment_loss(batch, model, device, **loss_options).item()
    model.train()
    return total / max(num_batches, 1)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::train_experiment
def train_experiment(model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq,
                     eval_iter, accumulation_steps=1, token_pos="last", average_embeddings=False,
                     ignore_index=-100):
    """Chapter 6's training loop with gradient accumulation.

    The gradients of `accumulation_steps` batches are summed (each loss
    divided by that number) before one optimizer step, which behaves like one
    batch that many times larger: how --no-padding's batches of one can still
    learn from several texts per step. Losses are printed every `eval_freq`
    optimizer steps, accuracies after each epoch (`eval_iter` batches each).
    The last three arguments choose the logits and the loss (`experiment_loss`).
    """
    readout = {"token_pos": token_pos, "average_embeddings": average_embeddings}
    loss_options = {**readout, "ignore_index": ignore_index}
    steps, global_step = accumulation_steps, -1
    for epoch in range(num_epochs):
        model.train()
        optimizer.zero_grad()
        batches = tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False)
        for batch_index, batch in enumerate(batches, start=1):
            (experiment_loss(batch, model, device, **loss_options) / steps).backward()
            if batch_index % steps and batch_index != len(train_loader):
                continue
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = (
                    experiment_loss_loader(loader, model, device, eval_iter, **loss_options)
                    for loader in (train_loader, val_loader))
                tqdm.write(f"Ep {epoch + 1} (Step {global_step:06d}): "
                           f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_acc, val_acc = (
            experiment_accuracy(loader, model, device, eval_iter, **readout)
            for loader in (train_loader, val_loader))
        tqdm.write(f"Training accuracy: {train_acc * 100:.2f}% | "
                   f"Validation accuracy: {val_acc * 100:.2f}%")


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::gpt2_size_arg
def gpt2_size_arg(value):
    """--model-size: 124M, 355M, 774M, 1558M, or the book's "gpt2-medium (355M)" spelling."""
    return GPT2_BOOK_SIZE_NAMES.get(value, value)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::add_training_arguments
def add_training_arguments(parser, num_epochs=5):
    """--num-epochs, --learning-rate, --batch-size and --seed: every finetuning script has them."""
    parser.add_argument("--num-epochs", type=positive_int, default=num_epochs,
                        help="passes over the data")
    parser.add_argument("--learning-rate", type=positive_float, default=5e-5,
                        help="AdamW learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="texts per batch")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for the random weights, the new head and the shuffling")


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::add_experiment_arguments  # noqa: E501
def add_experiment_arguments(parser):
    """The options the experiment scripts share (the book repository's names, hyphenated)."""
    add_training_arguments(parser)
    parser.add_argument("--model-size", type=gpt2_size_arg, choices=GPT2_MODEL_SIZES,
                        default="124M", help='which GPT-2 to finetune (the book\'s spelling '
                        '"gpt2-medium (355M)" works too)')
    parser.add_argument("--weights", choices=("pretrained", "random"), default="pretrained",
                        help="OpenAI's pretrained weights, or random ones (no download)")
    parser.add_argument("--models-dir", default="gpt2",
                        help="folder that holds (or receives) OpenAI's GPT-2 files")
    parser.add_argument("--trainable-layers", choices=TRAINABLE_LAYERS, default="last_block",
                        help="what to finetune: the new head only, the last block(s) with the "
                             "final norm and head, everything, or LoRA layers (lora_alternative: "
                             "LoRA added to the frozen weights in the forward pass)")
    parser.add_argument("--lora-rank", type=positive_int, default=16,
                        help="rank of the LoRA updates (--trainable-layers lora)")
    parser.add_argument("--lora-alpha", type=positive_float, default=16,
                        help="LoRA's alpha: the update is scaled by alpha / rank")
    parser.add_argument("--trainable-token-pos", choices=TOKEN_POSITIONS, default="last",
                        help="classify from the last position, the first one, or each "
                             "text's last real token (flexible)")
    parser.add_argument("--average-embeddings", action="store_true",
                        help="classify from the average over each text's tokens")
    parser.add_argument("--context-length", type=context_length_arg,
                        default="longest_training_example",
                        help="pad texts to the longest training text, to the model's context "
                             "(model_context_length) or to a number of tokens")
    parser.add_argument("--no-padding", action="store_true",
                        help="no padding tokens: batches of one text (see --accumulation-steps)")
    parser.add_argument("--accumulation-steps", type=positive_int, default=1,
                        help="batches whose gradients are summed before each optimizer step")
    parser.add_argument("--disable-causal-mask", action="store_true",
                        help="let every token attend to later tokens too")
    parser.add_argument("--ignore-index", type=int, default=-100,
                        help="class label left out of the loss (the class labels are 0 and 1, "
                             "so the default -100, like 50256, leaves nothing out)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.1,
                        help="AdamW weight decay")
    parser.add_argument("--eval-freq", type=positive_int, default=50,
                        help="print the losses every this many optimizer steps")
    parser.add_argument("--eval-iter", type=positive_int, default=5,
                        help="batches per loss and accuracy measurement during training")
    parser.add_argument("--results-csv", type=writable_file, default="results.csv",
                        help="CSV file that receives one row per run (created if missing)")
    parser.add_argument("--max-examples", type=non_negative_int, default=0,
                        help="use only this many texts per split (0: all)")
    parser.add_argument("--test-mode", action="store_true",
                        help=f"{TEST_MODE_EXAMPLES} texts per split and, with --weights "
                             "random, a tiny 3-block GPT: a run of seconds, for tests")
    parser.add_argument("--compile", action="store_true",
                        help="compile the model with torch.compile (the first steps are slow "
                             "while it compiles; on a CPU it needs a C++ compiler)")
    add_device_argument(parser)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::cannot_compile_reason
def cannot_compile_reason(device):
    """Why torch.compile cannot work on `device` here (one line), or None if it can.

    On a CPU, torch.compile's default backend writes C++ and builds it with the
    compiler it finds (g++ by default); without one it would fail only at the
    first forward pass, with a long traceback.
    """
    if device.type != "cpu":
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
    except (ImportError, RuntimeError):  # RuntimeError: InvalidCxxCompiler
        return ("torch.compile needs a C++ compiler on the CPU and none was found "
                "(install g++, or run without --compile)")
    return None


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::check_experiment_args
def check_experiment_args(parser, args):
    """Checks that involve several options or the results file; exit 2 on a problem.

    Part of parsing (`parse_args` calls it before it returns): it only checks,
    and changes nothing.
    """
    try:
        results_header(args.results_csv)
    except ValueError as err:
        parser.error(f"argument --results-csv: {err}")
    reason = cannot_compile_reason(args.device) if args.compile else None
    if reason:
        parser.error(f"argument --compile: {reason}")


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::results_header
def results_header(path):
    """Check that `path` is missing or a results file with our columns (ValueError if not)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path} ({err})") from None
    if header is not None and tuple(header) != EXPERIMENT_FIELDS:
        raise ValueError(f"{path} exists with other columns; name another file")


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::append_result
def append_result(path, row):
    """Append `row` (a dict with EXPERIMENT_FIELDS) to the CSV file `path`, atomically.

    The old content and the new row go to a temporary file in the same
    folder, which then replaces the file: an interrupted run never leaves a
    half-written table, and a file with other columns is never touched.
    """
    path = Path(path)
    results_header(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new_row = io.StringIO()
    writer = csv.DictWriter(new_row, fieldnames=EXPERIMENT_FIELDS, lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerow(row)
    if old and not old.endswith("\n"):
        old += "\n"
    with atomic_write(path, newline="") as f:  # an existing file keeps its mode
        f.write(old + new_row.getvalue())


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::make_experiment_loaders  # noqa: E501
def make_experiment_loaders(csv_paths, tokenizer, model_context_length, context_length,
                            batch_size, seed, no_padding=False, max_examples=0):
    """Loaders for the train/validation/test CSVs, and the padding length (None without padding).

    `context_length` is a --context-length value; `max_examples` (0: all)
    limits every split.
    """
    if context_length == "model_context_length":
        max_length = model_context_length
    elif context_length == "longest_training_example":
        max_length = None
    else:
        max_length = min(int(context_length), model_context_length)
    train = ClassificationDataset(csv_paths[0], tokenizer, max_length, no_padding=no_padding,
                                  context_length=model_context_length)
    datasets = [train] + [ClassificationDataset(path, tokenizer, train.max_length,
                                                no_padding=no_padding)
                          for path in csv_paths[1:]]
    if max_examples:
        datasets = [Subset(d, range(min(max_examples, len(d)))) for d in datasets]
    torch.manual_seed(seed)  # the training loader's shuffling
    loaders = [DataLoader(d, batch_size=batch_size, shuffle=(i == 0), drop_last=(i == 0))
               for i, d in enumerate(datasets)]
    return loaders, (None if no_padding else train.max_length)


# Copied from ch06/02_bonus_additional-experiments/additional_experiments.py::run_experiment
def run_experiment(settings, csv_paths, script_name):
    """Build, finetune and evaluate the classifier `settings` describes; append the results row.

    `settings` is a dict of plain values with the experiment options' names
    (what `parse_args` returns). Returns the row (a dict).
    ValueError, ImportError and DownloadError reach the caller, which reports
    them in one line.
    """
    settings = dict(settings)
    if settings["no_padding"] and settings["batch_size"] != 1:
        print(f"--no-padding: batches of one text instead of {settings['batch_size']} "
              "(texts of different lengths cannot share a batch without padding)")
        settings["batch_size"] = 1
    device = settings["device"]
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    model, config = build_gpt(settings["model_size"], settings["weights"],
                              settings["models_dir"], settings["seed"], settings["test_mode"])
    (train_loader, val_loader, test_loader), max_length = make_experiment_loaders(
        csv_paths, tokenizer, config["context_length"], settings["context_length"],
        settings["batch_size"], settings["seed"], settings["no_padding"],
        settings["max_examples"] or (TEST_MODE_EXAMPLES if settings["test_mode"] else 0))
    print("Texts are not padded (batches of one)" if max_length is None
          else f"Texts padded to {max_length} tokens")
    print(f"{len(train_loader)} training, {len(val_loader)} validation and "
          f"{len(test_loader)} test batches")

    configure_trainable_layers(model, settings["trainable_layers"], settings["lora_rank"],
                               settings["lora_alpha"])
    if settings["disable_causal_mask"]:
        disable_causal_mask(model)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"Trainable parameters: {trainable:,}")
    if settings["compile"]:
        model = torch.compile(model)

    torch.manual_seed(settings["seed"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=settings["learning_rate"],
                                  weight_decay=settings["weight_decay"])
    readout = {"token_pos": settings["trainable_token_pos"],
               "average_embeddings": settings["average_embeddings"]}
    synchronize(device)
    start = time.perf_counter()
    train_experiment(model, train_loader, val_loader, optimizer, device,
                     settings["num_epochs"], settings["eval_freq"], settings["eval_iter"],
                     settings["accumulation_steps"], ignore_index=settings["ignore_index"],
                     **readout)
    synchronize(device)
    train_time = time.perf_counter() - start
    print(f"Training completed in {train_time / 60:.2f} minutes.")

    accuracies = {}
    for name, key, loader in (("Training", "train_acc", train_loader),
                              ("Validation", "val_acc", val_loader),
                              ("Test", "test_acc", test_loader)):
        accuracies[key] = experiment_accuracy(loader, model, device, **readout)
        print(f"{name} accuracy: {accuracies[key] * 100:.2f}%")

    row = {**{name: settings.get(name) for name in EXPERIMENT_FIELDS},
           "script": script_name,
           "model_size": "tiny" if settings["test_mode"] and settings["weights"] == "random"
           else settings["model_size"],
           "context_length": "none" if max_length is None else max_length,
           "device": device.type, "trainable_params": trainable,
           **{key: f"{value:.4f}" for key, value in accuracies.items()},
           "train_time_s": f"{train_time:.1f}"}
    append_result(settings["results_csv"], row)
    print(f"Appended the results to {settings['results_csv']}")
    return row
