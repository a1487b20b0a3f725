"""A tiny Gemma 4 (E2B's layout) with random weights, and its tokenizer, in the hub's formats.

* `TINY_GEMMA4_OVERRIDES`: a small configuration with both layer types, a sliding window
  shorter than the test sequences, KV-shared layers with the double-wide MLP, proportional
  RoPE on the full layers and per-layer embeddings;
* `random_hf_gemma4(cfg)`: transformers' `Gemma4ForCausalLM` for a config dict, every tensor
  perturbed so that a tensor loaded into the wrong place shows;
* `write_gemma4_tokenizer(folder)`: `tokenizer.json` shaped like Gemma's (BPE with byte
  fallback, spaces as "▁", the special tokens) and `tokenizer_config.json` with the chat
  template written for these tests;
* `write_gemma4_repo(folder, cfg)`: google/gemma-4-E2B-it as the hub serves it, tiny: the
  multimodal names (model.language_model.*), no lm_head (tied), a vision tensor beside it;
  `HUB_REPOS` serves it (fake_hub.py) as both E2B repositories.
"""

from pathlib import Path

import torch
from support.gemma3_checkpoints import BYTE_TOKENS, gemma_style
from support.hf_checkpoints import (hf_sizes, language_model_tensors, random_hf_model,
                                    save_safetensors, train_bpe, write_tokenizer_config)

GEMMA4_REPOS = ("google/gemma-4-E2B-it", "google/gemma-4-E2B")
GEMMA4_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"]
# A turn opens with <|turn> and closes with <turn|>; the assistant is called "model".
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<|turn>' + role + '\n' + message['content'] | trim + '<turn|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|turn>model\n' }}{%- endif -%}"
)
# 7 layers: 4 own their keys/values, the last 3 share them (E2B's double-wide MLP too).
TINY_GEMMA4_OVERRIDES = {
    "vocab_size": 640, "vocab_size_per_layer_input": 640, "emb_dim": 48, "hidden_dim": 64,
    "n_layers": 7, "n_heads": 4, "head_dim": 16, "n_kv_heads": 2, "global_head_dim": 32,
    "context_length": 128, "sliding_window": 8, "hidden_size_per_layer_input": 8,
    "num_kv_shared_layers": 3,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention",
                    "sliding_attention", "sliding_attention", "full_attention",
                    "full_attention"],
}

# The entries of E2B's configuration that the tiny model keeps.
GEMMA4_BASE = {
    "num_global_kv_heads": None, "use_double_wide_mlp": True, "attention_k_eq_v": False,
    "rope_local_base": 10_000.0, "rope_local_type": "default", "rope_global_base": 1_000_000.0,
    "rope_global_type": "proportional", "rope_global_partial_rotary_factor": 0.25,
    "layer_norm_eps": 1e-6, "final_logit_softcap": 30.0, "tie_word_embeddings": True,
    "pad_token_id": 0,
}


def tiny_gemma4_config(dtype=torch.float32):
    """The tiny Gemma 4 behind the fake hub repositories."""
    return {**GEMMA4_BASE, **TINY_GEMMA4_OVERRIDES, "dtype": dtype}


def hf_gemma4_config(cfg):
    """A transformers Gemma4TextConfig equivalent to our configuration dict `cfg`."""
    from transformers import Gemma4TextConfig

    return Gemma4TextConfig(
        **hf_sizes(cfg), vocab_size_per_layer_input=cfg["vocab_size_per_layer_input"],
        num_key_value_heads=cfg["n_kv_heads"], head_dim=cfg["head_dim"],
        global_head_dim=cfg["global_head_dim"],
        sliding_window=cfg["sliding_window"], layer_types=list(cfg["layer_types"]),
        hidden_size_per_layer_input=cfg["hidden_size_per_layer_input"],
        num_kv_shared_layers=cfg["num_kv_shared_layers"],
        use_double_wide_mlp=cfg["use_double_wide_mlp"], attention_k_eq_v=cfg["attention_k_eq_v"],
        rope_parameters={
            "sliding_attention": {"rope_type": cfg["rope_local_type"],
                                  "rope_theta": cfg["rope_local_base"]},
            "full_attention": {"rope_type": cfg["rope_global_type"],
                               "rope_theta": cfg["rope_global_base"],
                               "partial_rotary_factor": cfg["rope_global_partial_rotary_factor"]}},
        rms_norm_eps=cfg["layer_norm_eps"], final_logit_softcapping=cfg["final_logit_softcap"],
        tie_word_embeddings=cfg["tie_word_embeddings"], pad_token_id=cfg["pad_token_id"],
        bos_token_id=2, eos_token_id=1, attn_implementation="eager",
    )


def random_hf_gemma4(cfg, seed=0):
    """A Gemma4ForCausalLM with random weights in which every tensor differs (the
    checkpoint's `layer_scalar` buffers included)."""
    from transformers import Gemma4ForCausalLM

    return random_hf_model(Gemma4ForCausalLM, hf_gemma4_config(cfg), seed,
                           buffers=("layer_scalar",))


def write_gemma4_tokenizer(folder, vocab_size=600):
    """tokenizer.json (Gemma-style BPE, trained on a short text) and tokenizer_config.json."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    train_bpe(gemma_style(tokenizer, GEMMA4_SPECIAL_TOKENS.index("<bos>")), vocab_size,
              special_tokens=GEMMA4_SPECIAL_TOKENS + BYTE_TOKENS)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in GEMMA4_SPECIAL_TOKENS])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    write_tokenizer_config(folder, GEMMA4_CHAT_TEMPLATE, bos_token="<bos>", eos_token="<eos>",
                           pad_token="<pad>", unk_token="<unk>", add_bos_token=True,
                           add_eos_token=False, clean_up_tokenization_spaces=False)
    return folder / "tokenizer.json"


def hf_gemma4_tokenizer(tokenizer_json):
    """transformers' fast tokenizer from the same file, with the chat template above."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), bos_token="<bos>",
                                   eos_token="<eos>", pad_token="<pad>",
                                   chat_template=GEMMA4_CHAT_TEMPLATE)


def write_gemma4_repo(folder, cfg):
    """google/gemma-4-E2B(-it)'s files for the tiny model `cfg`; returns the HF model."""
    folder = Path(folder)
    hf_model = random_hf_gemma4(cfg)
    tensors = {**language_model_tensors(hf_model),
               "model.vision_tower.patch_embedder.input_proj.weight": torch.randn(8, 12)}
    save_safetensors(tensors, folder)
    (folder / "config.json").write_text(hf_model.config.to_json_string())
    write_gemma4_tokenizer(folder)
    return hf_model


HUB_REPOS = dict.fromkeys(GEMMA4_REPOS,
                          lambda folder: write_gemma4_repo(folder, tiny_gemma4_config()))
