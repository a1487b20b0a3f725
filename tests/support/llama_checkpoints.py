"""Tiny Llama checkpoints and tokenizers with random weights, in the hub's real formats.

Meta's Llama weights and tokenizers are gated and cannot be downloaded here.
This module writes stand-ins that are exact in format and small in size:

* `random_hf_llama(cfg)`: a Hugging Face `LlamaForCausalLM` with random weights
  for one of our configuration dicts (the reference implementation);
* `train_sentencepiece(path)`: a SentencePiece BPE `tokenizer.model` trained like
  Llama 2's (byte fallback, split digits, ids 0/1/2 = <unk>/<s>/</s>);
* `write_tiktoken_bpe(path)`: a byte-level BPE file in tiktoken's format, learned
  with Llama 3's pre-tokenization pattern, as Llama 3's `original/tokenizer.model`;
* `HUB_REPOS`: writers of tiny versions of Meta's repositories, served by
  fake_hub.py, so that the notebooks' real `hf_hub_download(repo_id=..., filename=...)`
  calls work with HF_HUB_OFFLINE=1.
"""

import base64
import io
import json
from collections import Counter
from functools import cache
from pathlib import Path

import regex
import torch
from support.hf_checkpoints import (TRAINING_TEXT, hf_sizes, merge_pair, pair_counts,
                                    random_hf_model, save_safetensors)

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Llama 3.1 / 3.2's special tokens, from id len(BPE tokens) on (128,000 in the real file).
LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(2, 247)]

# The tiny models behind the fake hub repositories, as our configuration dicts.
# The notebooks get the same values as CONFIG_OVERRIDES
# (tests/ch05/notebook_parameters.json; a test checks that they agree).
TINY_LLAMA2_OVERRIDES = {"vocab_size": 600, "context_length": 64, "emb_dim": 64, "n_heads": 4,
                         "n_layers": 2, "hidden_dim": 172}
TINY_LLAMA32_OVERRIDES = {"vocab_size": 768, "context_length": 512, "emb_dim": 64,
                          "n_heads": 4, "n_layers": 2, "hidden_dim": 128, "n_kv_groups": 2,
                          "rope_freq": {"factor": 32.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_context_length": 64}}
# converting-llama2-to-llama3.ipynb shrinks Llama 3 8B, 3.1 8B and 3.2 1B alike; each
# keeps its own RoPE settings (the real ones below).
TINY_LLAMA3_OVERRIDES = {key: value for key, value in TINY_LLAMA32_OVERRIDES.items()
                         if key != "rope_freq"}
REAL_ROPE_FREQ = {
    "llama3": None,
    "llama3.1": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_context_length": 8192},
    "llama3.2": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_context_length": 8192},
}
NUM_BPE_TOKENS = TINY_LLAMA32_OVERRIDES["vocab_size"] - len(LLAMA3_SPECIAL_TOKENS)
LLAMA2_BASE = {"rope_base": 10_000.0, "n_kv_groups": None, "rope_freq": None}
LLAMA32_BASE = {"rope_base": 500_000.0}


def hf_llama_config(cfg, tie_word_embeddings=False):
    """A transformers LlamaConfig equivalent to our configuration dict `cfg`."""
    from transformers import LlamaConfig

    rope = {"rope_type": "default", "rope_theta": float(cfg["rope_base"])}
    if cfg.get("rope_freq"):
        freq = cfg["rope_freq"]
        rope.update(rope_type="llama3", factor=freq["factor"],
                    low_freq_factor=freq["low_freq_factor"],
                    high_freq_factor=freq["high_freq_factor"],
                    original_max_position_embeddings=freq["original_context_length"])
    return LlamaConfig(
        **hf_sizes(cfg),
        num_key_value_heads=cfg.get("n_kv_groups") or cfg["n_heads"],
        head_dim=cfg.get("head_dim") or cfg["emb_dim"] // cfg["n_heads"],
        rms_norm_eps=1e-5,
        rope_parameters=rope, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
        attn_implementation="eager",  # the textbook formula, as the reference
    )


def random_hf_llama(cfg, tie_word_embeddings=False, seed=0):
    """A LlamaForCausalLM with random weights in which every tensor differs."""
    from transformers import LlamaForCausalLM

    return random_hf_model(LlamaForCausalLM, hf_llama_config(cfg, tie_word_embeddings), seed)


def train_sentencepiece(path, vocab_size=TINY_LLAMA2_OVERRIDES["vocab_size"],
                        text=TRAINING_TEXT):
    """Train a SentencePiece BPE model with Llama 2's settings; write it to `path`."""
    Path(path).write_bytes(_sentencepiece_model(vocab_size, text))
    return path


@cache
def _sentencepiece_model(vocab_size, text):
    """The bytes of the trained model (trained once per process for each setting)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()), model_writer=model,
        vocab_size=vocab_size, model_type="bpe", byte_fallback=True, split_digits=True,
        add_dummy_prefix=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )
    return model.getvalue()


def learn_bpe_ranks(text=TRAINING_TEXT, num_tokens=NUM_BPE_TOKENS, pattern=LLAMA3_PATTERN):
    """Byte-level BPE: the 256 bytes, then the most frequent adjacent pairs, merged in turn.

    Each merged token's rank is the order in which it was learned, which is
    what tiktoken's ranks mean. Merges never cross pre-tokenizer pieces.
    """
    ranks = {bytes([b]): b for b in range(256)}
    words = Counter(tuple(bytes([b]) for b in piece.encode("utf-8"))
                    for piece in regex.findall(pattern, text))
    while len(ranks) < num_tokens:
        pairs = pair_counts(words)
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], -ranks[pair[0]], -ranks[pair[1]]))
        merged = best[0] + best[1]
        ranks.setdefault(merged, len(ranks))
        words = Counter({merge_pair(word, best, merged): count for word, count in words.items()})
    return ranks


@cache
def _default_bpe_ranks():
    """learn_bpe_ranks() once per process: several fake repositories share the file."""
    return learn_bpe_ranks()


def write_tiktoken_bpe(path, ranks=None):
    """Write BPE ranks in tiktoken's file format: "<base64 of the bytes> <rank>" per line."""
    ranks = _default_bpe_ranks() if ranks is None else ranks
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in
             sorted(ranks.items(), key=lambda item: item[1])]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


# Hugging Face's names -> Meta's original names (consolidated.00.pth), per parameter.
HF_TO_META_NAMES = {
    "model.embed_tokens.weight": "tok_embeddings.weight", "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight", "self_attn.q_proj.weight": "attention.wq.weight",
    "self_attn.k_proj.weight": "attention.wk.weight",
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight",
    "mlp.up_proj.weight": "feed_forward.w3.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "input_layernorm.weight": "attention_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def meta_state_dict(hf_model, cfg):
    """A Hugging Face Llama's weights in Meta's original layout and RoPE row order.

    Hugging Face's conversion script reorders each head's query and key rows
    from Meta's interleaved RoPE pairs (0, 1), (2, 3), ... to "rotate half";
    this undoes it (each head's first half of rows goes to the even places).
    """
    def to_interleaved(weight, num_heads):
        out_dim, in_dim = weight.shape
        return (weight.reshape(num_heads, 2, out_dim // num_heads // 2, in_dim)
                .transpose(1, 2).reshape(out_dim, in_dim))

    num_kv_heads = cfg.get("n_kv_groups") or cfg["n_heads"]
    params = {}
    for name, tensor in hf_model.state_dict().items():
        if name.startswith("model.layers."):
            _, _, index, rest = name.split(".", 3)
            if rest == "self_attn.q_proj.weight":
                tensor = to_interleaved(tensor, cfg["n_heads"])
            elif rest == "self_attn.k_proj.weight":
                tensor = to_interleaved(tensor, num_kv_heads)
            params[f"layers.{index}.{HF_TO_META_NAMES[rest]}"] = tensor.clone()
        else:
            params[HF_TO_META_NAMES[name]] = tensor.clone()
    params["rope.freqs"] = torch.ones(cfg["emb_dim"] // cfg["n_heads"] // 2)  # Llama 2 has it
    return params


def tiny_llama2_config():
    """The tiny Llama 2 behind the fake hub repository, in float32."""
    return {**LLAMA2_BASE, **TINY_LLAMA2_OVERRIDES, "dtype": torch.float32}


def tiny_llama32_config():
    """The tiny Llama 3.2 behind the fake hub repository, in float32."""
    return {**LLAMA32_BASE, **TINY_LLAMA32_OVERRIDES, "dtype": torch.float32}


def _write_llama2_repo(folder):
    """Like meta-llama/Llama-2-7b-hf: sharded safetensors with an index, tokenizer.model."""
    random_hf_llama(tiny_llama2_config()).save_pretrained(folder, max_shard_size="100KB")
    train_sentencepiece(folder / "tokenizer.model")


def _write_llama32_repo(folder):
    """Like meta-llama/Llama-3.2-1B-Instruct: model.safetensors (tied head), tiktoken file."""
    random_hf_llama(tiny_llama32_config(), tie_word_embeddings=True).save_pretrained(folder)
    (folder / "original").mkdir()
    write_tiktoken_bpe(folder / "original" / "tokenizer.model")


def _write_llama2_meta_repo(folder, seed):
    """Like meta-llama/Llama-2-7b(-chat): Meta's consolidated.00.pth, params.json, tokenizer."""
    cfg = tiny_llama2_config()
    torch.save(meta_state_dict(random_hf_llama(cfg, seed=seed), cfg),
               folder / "consolidated.00.pth")
    (folder / "params.json").write_text(json.dumps({
        "dim": cfg["emb_dim"], "n_heads": cfg["n_heads"], "n_layers": cfg["n_layers"],
        "norm_eps": 1e-5, "vocab_size": -1, "multiple_of": 256}))
    train_sentencepiece(folder / "tokenizer.model")


def tiny_llama3_family_config(version):
    """The tiny Llama 3 / 3.1 / 3.2 of converting-llama2-to-llama3.ipynb's suite run."""
    return {**LLAMA32_BASE, **TINY_LLAMA3_OVERRIDES, "rope_freq": REAL_ROPE_FREQ[version],
            "dtype": torch.float32}


def _write_llama3_family_repo(folder, version, num_shards, seed):
    """Like meta-llama/Meta-Llama-3-8B, Llama-3.1-8B (4 shards) or Llama-3.2-1B (one file)."""
    tied = version == "llama3.2"
    model = random_hf_llama(tiny_llama3_family_config(version), tie_word_embeddings=tied,
                            seed=seed)
    if num_shards == 1:
        model.save_pretrained(folder)
    else:
        save_safetensors(model.state_dict(), folder,
                         [f"model-{i:05d}-of-{num_shards:05d}.safetensors"
                          for i in range(1, num_shards + 1)])
    (folder / "original").mkdir()
    write_tiktoken_bpe(folder / "original" / "tokenizer.model")


HUB_REPOS = {
    "meta-llama/Llama-2-7b-hf": _write_llama2_repo,
    "meta-llama/Llama-3.2-1B-Instruct": _write_llama32_repo,
    "meta-llama/Llama-2-7b": lambda folder: _write_llama2_meta_repo(folder, seed=1),
    "meta-llama/Llama-2-7b-chat": lambda folder: _write_llama2_meta_repo(folder, seed=2),
    "meta-llama/Meta-Llama-3-8B":
        lambda folder: _write_llama3_family_repo(folder, "llama3", num_shards=4, seed=3),
    "meta-llama/Llama-3.1-8B":
        lambda folder: _write_llama3_family_repo(folder, "llama3.1", num_shards=4, seed=4),
    "meta-llama/Llama-3.2-1B":
        lambda folder: _write_llama3_family_repo(folder, "llama3.2", num_shards=1, seed=5),
}
