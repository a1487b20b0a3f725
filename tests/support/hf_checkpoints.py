"""What every model family's stand-in checkpoints share: random weights, files, tokenizers.

The family modules (llama_checkpoints.py, qwen3_checkpoints.py, gemma3_checkpoints.py, ...)
keep what is particular to a family: its transformers config, its tokenizer's layout,
its repository's file names. The common steps live here:

* `hf_sizes(cfg)`: the sizes every transformers decoder config takes, from our names;
* `random_hf_model(model_class, config)`: a transformers model with seeded random
  weights in which every tensor differs;
* `save_safetensors(tensors, folder, shard_names)`: safetensors files, and for several
  shards the `model.safetensors.index.json` that lists them, as the hub's repositories;
* `models_from_notebooks(notebooks, model_class, load_weights, cfg, state_dict)`: each
  notebook's own model class, filled by the notebook's own weight loader;
* `language_model_tensors(hf_model)`: a text model's tensors under the names of the
  released multimodal checkpoint (`model.language_model.`, tied head left out);
* `TRAINING_TEXT`, `train_bpe(tokenizer, ...)` and `write_tokenizer_config(folder, ...)`:
  a small BPE learned with the `tokenizers` library, and the `tokenizer_config.json`
  holding a chat template; `pair_counts` and `merge_pair`, the two steps of learning a
  BPE by hand where a file format needs the merges in their order (tiktoken's, Gemma's).
"""

import json
from collections import Counter
from pathlib import Path

import torch

# Written for these tests: varied English with digits, punctuation, contractions,
# accents and emoji, so that every kind of pre-tokenizer piece occurs.
TRAINING_TEXT = """\
The llama is a domesticated camelid from South America. Llamas were used as pack
animals by the Inca; a grown llama can carry 25 to 30 percent of its weight for 8 to
13 km. They're social animals and live in herds. "Don't they spit?" you'll ask. They do,
mostly at each other, when they disagree about food: grass, hay, and 2-3 kg of silage.
In 2024, 1,234,567 visitors came to see 89 llamas at the fair -- café, crème brûlée,
naïve piñata! Ünïcödé wörks too: 😀 🦙 ✓. Weights: 0.5, 12.75, 3e-4; dates 03/12/2026.
    Indented line with tabs\tand  double  spaces.
Alpacas are smaller than llamas, and their wool is finer. Guanacos and vicuñas are wild.
I'm sure we'd like to know what they've eaten; it's grass, mostly, and they'll chew it.
""" * 3


def hf_sizes(cfg):
    """The sizes every transformers decoder config takes, from our configuration dict.

    (`intermediate_size` only where `cfg` has a feed-forward width: a mixture of experts
    names its own.)
    """
    sizes = dict(vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"],
                 num_hidden_layers=cfg["n_layers"], num_attention_heads=cfg["n_heads"],
                 max_position_embeddings=cfg["context_length"])
    if "hidden_dim" in cfg:
        sizes["intermediate_size"] = cfg["hidden_dim"]
    return sizes


def random_hf_model(model_class, config, seed=0, buffers=()):
    """`model_class(config)` in eval mode, with seeded random weights all distinct.

    Hugging Face initialises norm weights to 1 (Gemma's to 0) and biases to 0; noise on
    every parameter makes each tensor distinct, so a tensor loaded into the wrong place
    changes the output. Persistent buffers whose names end with one of `buffers` (weights
    the checkpoint holds, such as Gemma 4's `layer_scalar`) get noise too.
    """
    torch.manual_seed(seed)
    model = model_class(config).eval()
    parameters = {id(param) for param in model.parameters()}
    seen = set()
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():  # checkpoint order
            wanted = id(tensor) in parameters or name.endswith(tuple(buffers))
            if wanted and id(tensor) not in seen:  # a tied head is its embedding's tensor
                seen.add(id(tensor))
                tensor.add_(0.05 * torch.randn_like(tensor))
    return model


def save_safetensors(tensors, folder, shard_names=("model.safetensors",)):
    """Save `tensors` in order across the files `shard_names`, as the hub's repositories.

    One name: a single file. Several: consecutive, equal parts, and the index
    `model.safetensors.index.json` mapping each tensor to its file.
    """
    from safetensors.torch import save_file

    names, count = list(tensors), len(shard_names)
    weight_map = {}
    for i, shard in enumerate(shard_names):
        part = names[i * len(names) // count:(i + 1) * len(names) // count]
        save_file({name: tensors[name].contiguous() for name in part}, Path(folder) / shard,
                  metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    if count > 1:
        total_size = sum(t.numel() * t.element_size() for t in tensors.values())
        (Path(folder) / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2))


def models_from_notebooks(notebooks, model_class, load_weights, cfg, state_dict):
    """{key: model} for {key: notebook}: the notebook's `model_class(cfg)` in eval mode,
    loaded by its `load_weights(model, cfg, state_dict)` (both named as in the book)."""
    models = {}
    for key, notebook in notebooks.items():
        model = getattr(notebook, model_class)(cfg).eval()
        getattr(notebook, load_weights)(model, cfg, state_dict)
        models[key] = model
    return models


def language_model_tensors(hf_model):
    """A causal LM's tensors as a released multimodal checkpoint holds its language model:
    under `model.language_model.`, the tied head left out."""
    return {name.replace("model.", "model.language_model.", 1): tensor
            for name, tensor in hf_model.state_dict().items() if name != "lm_head.weight"}


def train_bpe(tokenizer, vocab_size, special_tokens=(), initial_alphabet=(), lines=None):
    """Train `tokenizer` (a `tokenizers.Tokenizer` with a BPE model) on TRAINING_TEXT.

    `special_tokens` get the first ids, in order; `initial_alphabet` (for byte-level
    tokenizers, every byte's character) is in the vocabulary whether the text has it or not.
    """
    from tokenizers import trainers

    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=list(initial_alphabet), show_progress=False)
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines() if lines is None else lines,
                                  trainer=trainer)
    return tokenizer


def pair_counts(words):
    """How often each adjacent pair of tokens occurs in `words` ({tuple of tokens: count})."""
    pairs = Counter()
    for word, count in words.items():
        for pair in zip(word, word[1:], strict=False):
            pairs[pair] += count
    return pairs


def merge_pair(word, pair, merged):
    """`word` (a tuple of tokens) with each occurrence of `pair` replaced by `merged`."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def write_tokenizer_config(folder, chat_template, **settings):
    """`tokenizer_config.json` with the chat template and `settings` (bos_token, ...)."""
    path = Path(folder) / "tokenizer_config.json"
    path.write_text(json.dumps({**settings, "chat_template": chat_template}, indent=2))
    return path
