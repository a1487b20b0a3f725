"""Tiny Olmo 3 and Tiny Aya checkpoints and tokenizers, random but in the hub's real formats.

The real weights (15 GB and more) cannot be downloaded here. This module writes
stand-ins that are exact in format and small in size:

* `random_hf_olmo3(cfg)` / `random_hf_tiny_aya(cfg)`: Hugging Face's
  `Olmo3ForCausalLM` / `Cohere2ForCausalLM` with random weights for one of our
  configuration dicts (the references);
* `write_tokenizer_json(path, ...)`: a byte-level BPE `tokenizer.json`, trained
  with the `tokenizers` library on a few lines, with the model's special tokens;
* `HUB_REPOS` (served by fake_hub.py): tiny versions of allenai/Olmo-3-7B-Instruct
  and CohereLabs/tiny-aya-global, sharded like the real ones
  (`model.safetensors.index.json`).
"""

from pathlib import Path

import torch
from support.hf_checkpoints import hf_sizes, random_hf_model, train_bpe, write_tokenizer_config

OLMO3_SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]

# The sizes of both tiny models: three sliding-window layers (a window of 8 tokens) and
# a full-attention layer, grouped key/value heads.
TINY_SIZES = {
    "vocab_size": 384, "context_length": 512, "emb_dim": 64, "n_heads": 4, "n_kv_heads": 2,
    "head_dim": 16, "hidden_dim": 96, "n_layers": 4, "sliding_window": 8,
    "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
}
# The tiny Olmo 3 behind the fake hub repository: YaRN on (original context 32 of 512).
TINY_OLMO3_OVERRIDES = {**TINY_SIZES, "rope_orig_max": 32}


# The entries of the notebooks' OLMO3_CONFIG_7B that the tiny model keeps (test_olmo3.py
# checks that they agree).
OLMO3_7B_BASE = {
    "attention_bias": False, "attention_dropout": 0.0, "rope_base": 500_000.0,
    "rope_attention_factor": 1.2079441541679836, "rope_type": "yarn", "rope_factor": 8.0,
    "beta_fast": 32.0, "beta_slow": 1.0, "rms_norm_eps": 1e-6, "eos_token_id": 100_257,
    "pad_token_id": 100_277,
}


def tiny_olmo3_config(base=OLMO3_7B_BASE):
    """The tiny Olmo 3 in float32, from OLMO3_CONFIG_7B (`base`)."""
    return {**base, **TINY_OLMO3_OVERRIDES, "dtype": torch.float32}


def hf_olmo3_config(cfg, tie_word_embeddings=False):
    """A transformers Olmo3Config equivalent to our configuration dict `cfg`.

    RoPE scaling is given as in the real config.json (`rope_scaling`), which
    transformers applies to the full-attention layers only.
    """
    from transformers import Olmo3Config

    rope_scaling = None
    if cfg["rope_type"] == "yarn":
        rope_scaling = {"rope_type": "yarn", "factor": cfg["rope_factor"],
                        "original_max_position_embeddings": cfg["rope_orig_max"],
                        "attention_factor": cfg["rope_attention_factor"],
                        "beta_fast": cfg["beta_fast"], "beta_slow": cfg["beta_slow"]}
    return Olmo3Config(
        **hf_sizes(cfg), num_key_value_heads=cfg["n_kv_heads"], head_dim=cfg["head_dim"],
        rms_norm_eps=cfg["rms_norm_eps"], sliding_window=cfg["sliding_window"],
        layer_types=list(cfg["layer_types"]), attention_bias=cfg["attention_bias"],
        rope_theta=cfg["rope_base"], rope_scaling=rope_scaling,
        tie_word_embeddings=tie_word_embeddings, pad_token_id=None, bos_token_id=None,
        eos_token_id=None, attn_implementation="eager",
    )


def random_hf_olmo3(cfg, tie_word_embeddings=False, seed=0):
    from transformers import Olmo3ForCausalLM

    return random_hf_model(Olmo3ForCausalLM, hf_olmo3_config(cfg, tie_word_embeddings), seed)


def write_tokenizer_json(path, special_tokens, vocab_size, bos_token=None):
    """Train a byte-level BPE on TRAINING_TEXT and save it as a tokenizer.json.

    The special tokens get the first ids, in order. With `bos_token` the
    tokenizer puts it in front of every encoded text (a template post-processor),
    as Tiny Aya's does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    train_bpe(tokenizer, vocab_size, special_tokens=special_tokens,
              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    if bos_token is not None:
        bos = (bos_token, tokenizer.token_to_id(bos_token))
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[bos])
    tokenizer.save(str(path))
    return path


def write_sharded_checkpoint(hf_model, folder):
    """save_pretrained in shards with an index, as the real multi-file repositories are."""
    hf_model.save_pretrained(folder, max_shard_size="100KB")
    assert (Path(folder) / "model.safetensors.index.json").exists()
    return folder


def olmo3_chat_template():
    """The notebook's Olmo 3 chat format as a Jinja template, for transformers' tokenizer."""
    return ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
            "{{ message['content'] }}\n<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def write_olmo3_repo(folder, base_cfg=OLMO3_7B_BASE, seed=0):
    """Like allenai/Olmo-3-7B-Instruct: config.json, sharded safetensors, tokenizer.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_sharded_checkpoint(random_hf_olmo3(tiny_olmo3_config(base_cfg), seed=seed), folder)
    write_tokenizer_json(folder / "tokenizer.json", OLMO3_SPECIAL_TOKENS,
                         TINY_OLMO3_OVERRIDES["vocab_size"])
    write_tokenizer_config(folder, olmo3_chat_template(), eos_token="<|endoftext|>",
                           pad_token="<|pad|>")
    return folder


# Tiny Aya: the first special tokens of its tokenizer (ids 0-3 as in the real file, whose
# config names pad 0, bos 2, eos 3), then its chat tokens.
TINY_AYA_SPECIAL_TOKENS = [
    "<PAD>", "<UNK>", "<BOS_TOKEN>", "<EOS_TOKEN>", "<|START_OF_TURN_TOKEN|>",
    "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>",
    "<|START_RESPONSE|>", "<|END_RESPONSE|>",
]

# The tiny Tiny Aya behind the fake hub repository: RoPE sliding-window layers, a NoPE
# full-attention layer, a logit scale that is not 1.
TINY_AYA_OVERRIDES = {**TINY_SIZES, "logit_scale": 0.25}


# The entries of the notebooks' TINY_AYA_CONFIG that the tiny model keeps (test_tiny_aya.py
# checks that they agree).
TINY_AYA_BASE = {
    "attention_bias": False, "attention_dropout": 0.0, "rope_base": 50_000.0,
    "layer_norm_eps": 1e-5, "tie_word_embeddings": True, "bos_token_id": 2, "eos_token_id": 3,
    "pad_token_id": 0,
}


def tiny_tiny_aya_config(base=TINY_AYA_BASE):
    """The tiny Tiny Aya in float32, from TINY_AYA_CONFIG (`base`)."""
    return {**base, **TINY_AYA_OVERRIDES, "dtype": torch.float32}


def hf_tiny_aya_config(cfg):
    """A transformers Cohere2Config equivalent to our configuration dict `cfg`."""
    from transformers import Cohere2Config

    assert cfg["head_dim"] == cfg["emb_dim"] // cfg["n_heads"]  # Cohere2Config derives it
    return Cohere2Config(
        **hf_sizes(cfg), num_key_value_heads=cfg["n_kv_heads"],
        layer_norm_eps=cfg["layer_norm_eps"],
        logit_scale=cfg["logit_scale"], sliding_window=cfg["sliding_window"],
        layer_types=list(cfg["layer_types"]), attention_bias=cfg["attention_bias"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rope_base"]},
        tie_word_embeddings=cfg["tie_word_embeddings"], pad_token_id=cfg["pad_token_id"],
        bos_token_id=cfg["bos_token_id"], eos_token_id=cfg["eos_token_id"],
        attn_implementation="eager",
    )


def random_hf_tiny_aya(cfg, seed=0):
    from transformers import Cohere2ForCausalLM

    return random_hf_model(Cohere2ForCausalLM, hf_tiny_aya_config(cfg), seed)


def tiny_aya_chat_template():
    """The notebook's Tiny Aya chat format as a Jinja template (bos_token written by it)."""
    return ("{{ bos_token }}{% for message in messages %}<|START_OF_TURN_TOKEN|>"
            "{% if message['role'] == 'user' %}<|USER_TOKEN|>{% else %}<|CHATBOT_TOKEN|>"
            "{% endif %}{{ message['content'] }}<|END_OF_TURN_TOKEN|>{% endfor %}"
            "{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
            "<|START_RESPONSE|>{% endif %}")


def write_tiny_aya_repo(folder, base_cfg=TINY_AYA_BASE, seed=0):
    """Like CohereLabs/tiny-aya-global: config.json, sharded safetensors without
    lm_head.weight (tied), tokenizer.json that adds <BOS_TOKEN>."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_sharded_checkpoint(random_hf_tiny_aya(tiny_tiny_aya_config(base_cfg), seed=seed),
                             folder)
    write_tokenizer_json(folder / "tokenizer.json", TINY_AYA_SPECIAL_TOKENS,
                         TINY_AYA_OVERRIDES["vocab_size"], bos_token="<BOS_TOKEN>")
    write_tokenizer_config(folder, tiny_aya_chat_template(), bos_token="<BOS_TOKEN>",
                           eos_token="<|END_OF_TURN_TOKEN|>", pad_token="<PAD>")
    return folder


HUB_REPOS = {"allenai/Olmo-3-7B-Instruct": write_olmo3_repo,
             "CohereLabs/tiny-aya-global": write_tiny_aya_repo}


def assert_cache_path_matches(nb, nb_kv, ours, ours_kv, hf_model, vocab_size, atol=1e-5):
    """The KV-cache notebook's model (`ours_kv`), fed a prompt then one token at a time,
    gives the cache-free model's logits; both notebooks' streaming generators and
    Hugging Face's greedy `generate` give the same 20 ids (26 tokens: past the window)."""
    torch.manual_seed(2)
    ids = torch.randint(0, vocab_size, (1, 6))
    with torch.no_grad():
        cache = nb_kv.KVCache(ours_kv.cfg["n_layers"])
        ours_kv.reset_kv_cache()
        stepwise = torch.cat([ours_kv(ids[:, :3], cache=cache)]
                             + [ours_kv(ids[:, i:i + 1], cache=cache) for i in range(3, 6)], 1)
        torch.testing.assert_close(stepwise, ours(ids), atol=atol, rtol=0)
        plain = torch.cat(list(nb.generate_text_basic_stream(ours, ids, 20)), dim=1)
        cached = torch.cat(list(nb_kv.generate_text_basic_stream(ours_kv, ids, 20)), dim=1)
        reference = hf_model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=None,
                                      attention_mask=torch.ones_like(ids))[:, 6:]
    assert torch.equal(plain, cached) and torch.equal(cached, reference)
