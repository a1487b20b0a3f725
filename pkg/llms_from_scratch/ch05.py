"""Chapter 5: pretraining (losses, training loop, sampling) and OpenAI's GPT-2 weights.

Copied from the chapter's code (home: ch05/01_main-chapter-code/ch05.ipynb; the
download and TensorFlow-checkpoint reader from gpt_download.py);
`tools/copy_forward.py` keeps every definition identical to its home.
"""

import json
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from .ch04 import generate_text_simple
from .downloads import GPT2_BPE_FILES, download_file


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


def assign(left, right):
    """The book's weight-loading helper: `right` as a new parameter shaped like `left`.

    `load_weights_into_gpt` copies in place with `assign_checked` instead (the
    model keeps its own parameter objects); this is for code written against
    the book's listing, `gpt.pos_emb.weight = assign(gpt.pos_emb.weight, params["wpe"])`.
    """
    right = torch.as_tensor(right, dtype=left.dtype)
    if left.shape != right.shape:
        raise ValueError(f"Shape mismatch. Left: {tuple(left.shape)}, Right: {tuple(right.shape)}")
    return torch.nn.Parameter(right.clone().detach())
