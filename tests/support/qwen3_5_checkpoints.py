"""A tiny Qwen3.5 with random weights, and its tokenizer, in the hub's real formats.

* `TINY_QWEN3_5_OVERRIDES`: our configuration for a small model with every kind of layer
  (Gated DeltaNet with grouped value heads, gated full attention, partial RoPE);
* `random_hf_qwen3_5(cfg)`: the Hugging Face `Qwen3_5ForCausalLM` for a config dict,
  every tensor perturbed so that a tensor loaded into the wrong place shows;
* `write_qwen_tokenizer_json(path)`: a byte-level BPE `tokenizer.json` shaped like
  Qwen's (regex split + byte level, Qwen's special tokens), trained on a short text;
* `write_qwen3_5_repo(folder)`: `Qwen/Qwen3.5-0.8B` as the hub serves it, with a tiny
  model: safetensors shards with `model.language_model.` names and an index,
  `config.json`, `tokenizer.json` and `tokenizer_config.json` with a chat template;
  `HUB_REPOS` serves it (fake_hub.py).
"""

from pathlib import Path

import torch
from support.hf_checkpoints import (hf_sizes, language_model_tensors, random_hf_model,
                                    save_safetensors, train_bpe, write_tokenizer_config)
from support.qwen3_checkpoints import qwen_byte_level_bpe

QWEN3_5_REPO_ID = "Qwen/Qwen3.5-0.8B"
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</think>",
]
# Qwen3.5's generation prompt, written for these tests: thinking on opens "<think>\n",
# thinking off writes an empty thinking block.
QWEN3_5_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- else %}{{- '<think>\\n' }}{%- endif %}"
    "{%- endif %}"
)
# Widths small, but every kind of layer and head grouping present; the notebooks get the
# same values as CONFIG_OVERRIDES (tests/ch05/notebook_parameters.json; a test checks).
TINY_QWEN3_5_OVERRIDES = {
    "vocab_size": 320, "context_length": 128, "emb_dim": 48, "n_heads": 4, "n_layers": 4,
    "hidden_dim": 80, "head_dim": 16, "n_kv_groups": 2, "linear_key_head_dim": 8,
    "linear_value_head_dim": 12, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
}

# The entries of Qwen3.5 0.8B's configuration that the tiny model keeps.
QWEN3_5_BASE = {"qk_norm": True, "rope_base": 10_000_000.0, "partial_rotary_factor": 0.25,
                "rms_norm_eps": 1e-6, "linear_conv_kernel_dim": 4}


def tiny_qwen3_5_config(dtype=torch.float32):
    """The tiny Qwen3.5 behind the fake hub repository."""
    return {**QWEN3_5_BASE, **TINY_QWEN3_5_OVERRIDES, "dtype": dtype}


def hf_qwen3_5_config(cfg, tie_word_embeddings=True):
    """A transformers Qwen3_5TextConfig equivalent to our configuration dict `cfg`."""
    from transformers import Qwen3_5TextConfig

    return Qwen3_5TextConfig(
        **hf_sizes(cfg), num_key_value_heads=cfg["n_kv_groups"], head_dim=cfg["head_dim"],
        rms_norm_eps=cfg["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rope_base"],
                         "partial_rotary_factor": cfg["partial_rotary_factor"]},
        linear_conv_kernel_dim=cfg["linear_conv_kernel_dim"],
        linear_key_head_dim=cfg["linear_key_head_dim"],
        linear_value_head_dim=cfg["linear_value_head_dim"],
        linear_num_key_heads=cfg["linear_num_key_heads"],
        linear_num_value_heads=cfg["linear_num_value_heads"],
        layer_types=list(cfg["layer_types"]), tie_word_embeddings=tie_word_embeddings,
        pad_token_id=None, bos_token_id=None, eos_token_id=None,
        attn_implementation="eager",  # the textbook formula, as the reference
    )


def random_hf_qwen3_5(cfg, tie_word_embeddings=True, seed=0):
    """A Qwen3_5ForCausalLM with random weights in which every tensor differs."""
    from transformers import Qwen3_5ForCausalLM

    return random_hf_model(Qwen3_5ForCausalLM, hf_qwen3_5_config(cfg, tie_word_embeddings), seed)


def write_qwen_tokenizer_json(path, vocab_size=300):
    """Train a byte-level BPE shaped like Qwen's tokenizer.json; write it to `path`."""
    from tokenizers import pre_tokenizers

    tokenizer = train_bpe(qwen_byte_level_bpe(), vocab_size, special_tokens=QWEN_SPECIAL_TOKENS,
                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.save(str(path))
    return path


def hf_qwen3_5_tokenizer(tokenizer_json):
    """transformers' fast tokenizer from the same file, with Qwen3.5's chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json),
                                   chat_template=QWEN3_5_CHAT_TEMPLATE)


def write_qwen3_5_repo(folder, cfg):
    """Qwen/Qwen3.5-0.8B's files for the tiny model `cfg`: two shards and their index."""
    folder = Path(folder)
    hf_model = random_hf_qwen3_5(cfg)
    # The released repository holds the multimodal model: language model under
    # model.language_model., the head tied (no lm_head.weight), vision tensors beside it.
    tensors = {**language_model_tensors(hf_model),
               "model.visual.patch_embed.proj.weight": torch.randn(8, 3, 2, 2, 2)}
    save_safetensors(dict(sorted(tensors.items())), folder,
                     [f"model.safetensors-0000{i}-of-00002.safetensors" for i in (1, 2)])
    (folder / "config.json").write_text(hf_model.config.to_json_string())
    write_qwen_tokenizer_json(folder / "tokenizer.json")
    write_tokenizer_config(folder, QWEN3_5_CHAT_TEMPLATE, eos_token="<|im_end|>",
                           pad_token="<|endoftext|>")
    return hf_model


HUB_REPOS = {QWEN3_5_REPO_ID: lambda folder: write_qwen3_5_repo(folder, tiny_qwen3_5_config())}
