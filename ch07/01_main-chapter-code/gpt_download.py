"""Download OpenAI's pretrained GPT-2 and read its weights into NumPy arrays.

OpenAI published GPT-2 in four sizes as TensorFlow checkpoints. Each size is a
folder of seven files (see `GPT2_FILES`). `download_and_load_gpt2` fetches
them with the course's download helper (which also reads them from a local
mirror, `$LLMS_FROM_SCRATCH_MIRROR`, when there is no network) and turns the
checkpoint into a nested dictionary of NumPy arrays that `load_weights_into_gpt`
(chapter 5) copies into our own `GPTModel`.

Reading the checkpoint needs TensorFlow (`pip install tensorflow-cpu`); nothing
else in the course does, so it is imported only when a checkpoint is read.

Every file is checked before it is used. The download helper already compares
what arrives with the server's Content-Length and the tokenizer files with
their sha256; here we also make sure each file can be what its name says (an
HTML error page saved under a checkpoint's name, a truncated or empty file).
A damaged file is removed, fetched once more, and if it is still damaged the
error says which file it was and that it was removed.
"""

import json
import os
import re
from pathlib import Path

from downloads import GPT2_BPE_FILES, download_file

# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_MODEL_SIZES
GPT2_MODEL_SIZES = ("124M", "355M", "774M", "1558M")

# Copied from ch05/01_main-chapter-code/gpt_download.py::GPT2_BASE_URL
GPT2_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
# A copy of the same files kept by the book's author, used if OpenAI's is down.
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

# The tokenizer files are the same for every size, and their sha256 is known.
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
