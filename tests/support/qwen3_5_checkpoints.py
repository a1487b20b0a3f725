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

import json
from pathlib import Path

import torch

QWEN3_5_REPO_ID = "Qwen/Qwen3.5-0.8B"
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</think>",
]
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
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
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"], num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"],
        head_dim=cfg["head_dim"], max_position_embeddings=cfg["context_length"],
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

    torch.manual_seed(seed)
    model = Qwen3_5ForCausalLM(hf_qwen3_5_config(cfg, tie_word_embeddings)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def write_qwen_tokenizer_json(path, vocab_size=300):
    """Train a byte-level BPE shaped like Qwen's tokenizer.json; write it to `path`."""
    from support.llama_checkpoints import TRAINING_TEXT
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines(), trainer)
    tokenizer.save(str(path))
    return path


def hf_qwen3_5_tokenizer(tokenizer_json):
    """transformers' fast tokenizer from the same file, with Qwen3.5's chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json),
                                   chat_template=QWEN3_5_CHAT_TEMPLATE)


def write_qwen3_5_repo(folder, cfg):
    """Qwen/Qwen3.5-0.8B's files for the tiny model `cfg`: two shards and their index."""
    from safetensors.torch import save_file

    folder = Path(folder)
    hf_model = random_hf_qwen3_5(cfg)
    # The released repository holds the multimodal model: language model under
    # model.language_model., the head tied (no lm_head.weight), vision tensors beside it.
    tensors = {name.replace("model.", "model.language_model.", 1): tensor.contiguous()
               for name, tensor in hf_model.state_dict().items() if name != "lm_head.weight"}
    tensors["model.visual.patch_embed.proj.weight"] = torch.randn(8, 3, 2, 2, 2)
    names = sorted(tensors)
    shards = {"model.safetensors-00001-of-00002.safetensors": names[: len(names) // 2],
              "model.safetensors-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, shard_names in shards.items():
        save_file({name: tensors[name] for name in shard_names}, folder / shard,
                  metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard_names, shard))
    total_size = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(hf_model.config.to_json_string())
    write_qwen_tokenizer_json(folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": QWEN3_5_CHAT_TEMPLATE, "eos_token": "<|im_end|>",
         "pad_token": "<|endoftext|>"}))
    return hf_model


HUB_REPOS = {QWEN3_5_REPO_ID: lambda folder: write_qwen3_5_repo(folder, tiny_qwen3_5_config())}
