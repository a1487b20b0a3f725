"""Generate text with OpenAI's pretrained GPT-2, or with a model you trained.

    python gpt_generate.py                              # GPT-2 124M, the book's settings
    python gpt_generate.py --model-size 355M --prompt "The future of AI is"
    python gpt_generate.py --checkpoint model.pth       # a model saved by gpt_train.py
    python gpt_generate.py --checkpoint book.pth --context-length 256
                        # the book's plain torch.save(model.state_dict(), "book.pth")
    python gpt_generate.py --temperature 0              # greedy, deterministic
    python gpt_generate.py --help

The first run for a size downloads OpenAI's files into `--models-dir` (0.5 GB
for 124M, 6 GB for 1558M), or copies them from the folder named by
$LLMS_FROM_SCRATCH_MIRROR. `load_weights_into_gpt` is copied unchanged from
the chapter notebook ch05.ipynb (its home); a test keeps the copies identical.
"""

import sys

import tiktoken
import torch
from downloads import MIRROR_ENV_VAR, DownloadError, cache_gpt2_tokenizer_files
from gpt_download import (
    GPT2_BASE_URL,
    GPT2_MODEL_SIZES,
    DamagedFileError,
    download_and_load_gpt2,
)
from gpt_utils import (
    generate,
    load_checkpoint,
    read_checkpoint_config,
    text_to_token_ids,
    token_ids_to_text,
)
from previous_chapters import GPT_CONFIG_124M, GPTModel
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    add_settings,
    existing_file,
    non_negative_float,
    non_negative_int,
    positive_int,
)

# Embedding size, heads and blocks of OpenAI's four GPT-2 sizes: the shape a
# --checkpoint without a stored configuration is read with.
GPT2_SHAPES = {
    "124M": {"emb_dim": 768, "n_heads": 12, "n_layers": 12},
    "355M": {"emb_dim": 1024, "n_heads": 16, "n_layers": 24},
    "774M": {"emb_dim": 1280, "n_heads": 20, "n_layers": 36},
    "1558M": {"emb_dim": 1600, "n_heads": 25, "n_layers": 48},
}


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


def load_openai_gpt2(model_size, models_dir):
    """Build a GPTModel holding OpenAI's GPT-2 of `model_size`."""
    settings, params = download_and_load_gpt2(model_size, models_dir)
    model = GPTModel(gpt_config_from_hparams(settings))
    load_weights_into_gpt(model, params)
    return model


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


# Every setting, once, as `add_settings` reads it: key: (flag, kind, default, help).
# parse_args returns a dict of these keys, plus "device".
SETTINGS = {
    "model_size": ("--model-size", GPT2_MODEL_SIZES, "124M",
                   "which OpenAI GPT-2 to load; with a --checkpoint that stores no "
                   "configuration, the size of the model it holds"),
    "checkpoint": ("--checkpoint", existing_file, None,
                   "use this model.pth instead of GPT-2: one saved by gpt_train.py, "
                   "or the book's torch.save(model.state_dict(), ...)"),
    "context_length": ("--context-length", positive_int, 256,
                       "context length of a --checkpoint that stores no configuration "
                       "(chapter 5 trains with 256)"),
    "qkv_bias": ("--qkv-bias", bool, False,
                 "a --checkpoint that stores no configuration has query/key/value biases "
                 "(true for models fine-tuned from OpenAI's weights)"),
    "models_dir": ("--models-dir", str, "gpt2",
                   "folder that holds (or receives) the downloaded GPT-2 files"),
    "prompt": ("--prompt", str, "Every effort moves you", "text to continue"),
    "max_new_tokens": ("--max-new-tokens", non_negative_int, 25, "how many tokens to generate"),
    "temperature": ("--temperature", non_negative_float, 1.5,
                    "sampling temperature; 0 picks the most likely token (greedy)"),
    "top_k": ("--top-k", non_negative_int, 50,
              "sample only among the k most likely tokens (0: all of them)"),
    "seed": ("--seed", int, 123, "seed for sampling"),
}


class ModelMismatch(ValueError):
    """A setting that does not fit the model it loads, found before generating."""

    def __init__(self, flag, problem):
        super().__init__(f"argument {flag}: {problem}")


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = ScriptArgumentParser(
        description="Generate text with OpenAI's GPT-2 or a model saved by gpt_train.py "
                    "(chapter 5). The defaults are the book's settings.",
    )
    add_settings(parser, SETTINGS)
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    if not settings["prompt"]:
        parser.error("argument --prompt: must not be empty: the model needs a token to continue")
    return settings


def main(settings):
    """Load the model `settings` (parse_args's dict) names; print and return its text."""
    return generate_text(load_chosen_model(settings), settings)


def load_chosen_model(settings):
    """OpenAI's GPT-2 or the --checkpoint's model, on the device, ready to generate.

    A checkpoint that does not fit, or a --top-k beyond the model's vocabulary,
    raises ModelMismatch (one line naming the flag).
    """
    if settings["checkpoint"] is None:
        model = load_openai_gpt2(settings["model_size"], settings["models_dir"])
    else:
        model = load_checkpoint_model(settings["checkpoint"], settings["model_size"],
                                      settings["context_length"], settings["qkv_bias"])
    vocab_size = model.out_head.weight.shape[0]
    if settings["top_k"] > vocab_size:
        raise ModelMismatch("--top-k", f"must be at most the vocabulary size {vocab_size}")
    return model.to(settings["device"]).eval()


def checkpoint_config(model_size, context_length, qkv_bias):
    """The model a --checkpoint without a stored configuration is read as."""
    return {**GPT_CONFIG_124M, **GPT2_SHAPES[model_size], "context_length": context_length,
            "drop_rate": 0.0, "qkv_bias": qkv_bias}


def load_checkpoint_model(path, model_size, context_length, qkv_bias):
    """The checkpoint's model; ModelMismatch (one line) naming what does not fit."""
    try:
        return load_trained_gpt(path, checkpoint_config(model_size, context_length, qkv_bias))
    except ValueError as err:
        # load_checkpoint lists one mismatch per line: the first few, on one line.
        summary, *mismatches = str(err).split("\n  ")
        if len(mismatches) > 3:
            mismatches = [*mismatches[:3], f"{len(mismatches) - 3} more"]
        flags = f"--model-size {model_size} --context-length {context_length}"
        raise ModelMismatch("--checkpoint", f"{summary.rstrip(':')}: {'; '.join(mismatches)} "
                            f"(without a stored configuration the model is built from {flags}"
                            f"{' --qkv-bias' if qkv_bias else ''})") from None
    except Exception as err:  # torch.load's errors differ by cause; their text is long
        raise ModelMismatch("--checkpoint", f"cannot read {path} as a PyTorch checkpoint "
                            f"({type(err).__name__}): not written by torch.save, damaged, or "
                            "holding objects other than tensors, which weights_only=True "
                            "refuses") from None


def generate_text(model, settings):
    """Continue the prompt with the sampling settings; print and return the text."""
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    torch.manual_seed(settings["seed"])
    token_ids = generate(
        model=model,
        idx=text_to_token_ids(settings["prompt"], tokenizer).to(settings["device"]),
        max_new_tokens=settings["max_new_tokens"],
        context_size=model.pos_emb.weight.shape[0],
        temperature=settings["temperature"],
        top_k=settings["top_k"] or None,
    )
    text = token_ids_to_text(token_ids.cpu(), tokenizer)
    print(text)
    return text


def run_from_command_line(argv=None):
    """Parse, load the model (a problem ends in one line), then generate."""
    settings = parse_args(argv)
    model_size = settings["model_size"]
    try:
        model = load_chosen_model(settings)
    except ModelMismatch as err:
        ScriptArgumentParser().error(str(err))
    except DamagedFileError as err:
        sys.exit(f"error: {err}")
    except DownloadError:
        sys.exit(
            f"error: could not download GPT-2 {model_size} (no network?). Either set "
            f"{MIRROR_ENV_VAR} to a folder holding gpt-2/models/{model_size}/ with "
            f"OpenAI's seven files, or place them in {settings['models_dir']}/{model_size}/ "
            f"(from {GPT2_BASE_URL}/{model_size}/)."
        )
    generate_text(model, settings)


if __name__ == "__main__":
    run_from_command_line()
