"""Tiny Qwen3 checkpoints and tokenizers with random weights, in the hub's real formats.

Qwen's weights cannot be downloaded here. This module writes stand-ins that are
exact in format and small in size:

* `random_hf_qwen3(cfg)`: a Hugging Face `Qwen3ForCausalLM` (or, for a
  configuration with experts, `Qwen3MoeForCausalLM`) with random weights, for
  one of our configuration dicts: the reference implementation;
* `write_qwen3_tokenizer_json(path)`: a byte-level BPE `tokenizer.json` in
  Qwen2/Qwen3's layout (NFC, the Qwen pre-tokenization pattern, the special
  tokens after the BPE tokens), learned here from a short text;
* `hf_qwen3_tokenizer(path)`: transformers' fast tokenizer for that file, with a
  chat template that writes Qwen3's format (the reference for our tokenizer);
* `HUB_REPOS` (served by fake_hub.py): the repositories the notebooks download, in
  which `Qwen/Qwen3-0.6B` has a single `model.safetensors` (tied head, as on the hub)
  and every larger size shards with `model.safetensors.index.json`.
"""

from functools import partial
from pathlib import Path

import torch
from support.hf_checkpoints import TRAINING_TEXT, hf_sizes, random_hf_model, train_bpe

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen3's added tokens, in the hub file's order (special ones first, then <tool_call>, <think>, ...)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                  "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                  "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                  "<|image_pad|>", "<|video_pad|>"]
PLAIN_ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
                      "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                      "<tool_response>", "</tool_response>", "<think>", "</think>"]
NUM_BPE_TOKENS = 400

# The chat format of Qwen3's chat template (tokenizer_config.json on the hub), for the
# messages our tokenizer writes: turns in ChatML, and with enable_thinking=False an
# empty thinking block opening the assistant's turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

# The tiny model behind every fake hub repository, as changes to a real configuration.
# The notebooks get the same values as CONFIG_OVERRIDES (a test checks that they agree).
TINY_QWEN3_OVERRIDES = {"vocab_size": 512, "context_length": 256, "emb_dim": 64, "n_heads": 4,
                        "n_layers": 2, "hidden_dim": 96, "head_dim": 32, "n_kv_groups": 2}
TINY_MOE_OVERRIDES = {**{k: v for k, v in TINY_QWEN3_OVERRIDES.items() if k != "hidden_dim"},
                      "num_experts": 6, "num_experts_per_tok": 2, "moe_hidden_dim": 32}


def qwen_byte_level_bpe():
    """An untrained tokenizer with Qwen's layout: NFC, the Qwen split pattern, byte level."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def write_qwen3_tokenizer_json(path, text=TRAINING_TEXT, num_bpe_tokens=NUM_BPE_TOKENS):
    """Learn a byte-level BPE from `text` and save it in Qwen3's tokenizer.json layout."""
    from tokenizers import AddedToken, pre_tokenizers, processors

    tokenizer = train_bpe(qwen_byte_level_bpe(), num_bpe_tokens,
                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                          lines=text.splitlines(keepends=True))
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False)
                          for t in PLAIN_ADDED_TOKENS])
    tokenizer.save(str(path))
    return path


def hf_qwen3_tokenizer(path):
    """transformers' fast tokenizer for the tokenizer.json at `path`, with the chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(path), chat_template=CHAT_TEMPLATE,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>")


def hf_qwen3_config(cfg, tie_word_embeddings=False):
    """A transformers Qwen3Config (Qwen3MoeConfig with experts) equal to our dict `cfg`."""
    from transformers import Qwen3Config, Qwen3MoeConfig

    common = dict(
        **hf_sizes(cfg), num_key_value_heads=cfg["n_kv_groups"],
        head_dim=cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"], rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg["rope_base"])},
        tie_word_embeddings=tie_word_embeddings, bos_token_id=None, eos_token_id=None,
        pad_token_id=None, attn_implementation="eager")
    if cfg.get("num_experts", 0) > 0:
        return Qwen3MoeConfig(**{**common, "intermediate_size": 4 * cfg["emb_dim"]},
                              moe_intermediate_size=cfg["moe_hidden_dim"],
                              num_experts=cfg["num_experts"],
                              num_experts_per_tok=cfg["num_experts_per_tok"],
                              norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])
    return Qwen3Config(**common)


def random_hf_qwen3(cfg, tie_word_embeddings=False, seed=0):
    """A Qwen3ForCausalLM / Qwen3MoeForCausalLM with random weights, every tensor distinct."""
    from transformers import Qwen3ForCausalLM, Qwen3MoeForCausalLM

    model_class = Qwen3MoeForCausalLM if cfg.get("num_experts", 0) > 0 else Qwen3ForCausalLM
    return random_hf_model(model_class, hf_qwen3_config(cfg, tie_word_embeddings), seed)


def tiny_qwen3_config(repo_id):
    """Our configuration of the tiny model behind `repo_id`, in float32."""
    base = {"qk_norm": True, "rope_base": 1_000_000.0, "dtype": torch.float32}
    if "A3B" in repo_id:
        return {**base, **TINY_MOE_OVERRIDES, "rope_base": 10_000_000.0}
    return {**base, **TINY_QWEN3_OVERRIDES}


def write_qwen3_repo(folder, repo_id, wordy=False):
    """The files of `repo_id` on the hub: config.json, safetensors (bfloat16) and tokenizer.json.

    Qwen3-0.6B ties its output head and ships one model.safetensors; the
    larger repositories have their own head and several shards with an index.
    `wordy` silences (zeroes) the output rows of every token without a letter,
    so that greedy answers are words a page shows as they are, and never end early.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_file = write_qwen3_tokenizer_json(folder / "tokenizer.json")
    small = repo_id.startswith("Qwen/Qwen3-0.6B")
    model = random_hf_qwen3(tiny_qwen3_config(repo_id), tie_word_embeddings=small)
    if wordy:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        with torch.no_grad():
            for token_id in range(model.config.vocab_size):
                text = tokenizer.decode([token_id], skip_special_tokens=False)
                if not any(c.isalpha() for c in text) or "<" in text:
                    model.lm_head.weight[token_id] = 0.0
    shards = {} if small else {"max_shard_size": "50KB"}
    model.to(torch.bfloat16).save_pretrained(folder, **shards)
    return model


HUB_REPOS = {repo_id: partial(write_qwen3_repo, repo_id=repo_id)
             for repo_id in ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B-Base", "Qwen/Qwen3-1.7B",
                             "Qwen/Qwen3-Coder-30B-A3B-Instruct")}
