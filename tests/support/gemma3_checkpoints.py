"""Tiny Gemma 3 models and tokenizers with random weights, in the hub's real formats.

Google's Gemma 3 repositories are gated and cannot be downloaded here. This
module writes stand-ins that are exact in format and small in size:

* `random_hf_gemma3(cfg)`: a Hugging Face `Gemma3ForCausalLM` with random
  weights for one of our configuration dicts (the reference implementation);
* `write_gemma_tokenizer(folder)`: `tokenizer.json` laid out like Gemma 3's
  (BPE with byte fallback, spaces normalised to "▁", <bos> added in front,
  the special tokens at the real file's ids) and `tokenizer_config.json`
  with Gemma 3's chat template, learned from a short text;
* `HUB_REPOS` (served by fake_hub.py): tiny versions of google/gemma-3-270m-it
  and google/gemma-3-270m, so that the notebooks' real `hf_hub_download` calls
  work with HF_HUB_OFFLINE=1.
"""

import re
from collections import Counter
from pathlib import Path

import torch
from support.hf_checkpoints import (TRAINING_TEXT, hf_sizes, merge_pair, pair_counts,
                                    random_hf_model, write_tokenizer_config)

# The tiny model behind the fake hub repositories. The notebooks get the same
# values as CONFIG_OVERRIDES (tests/ch05/notebook_parameters.json; a test
# checks that they agree). The window of 16 is shorter than the notebook's prompt.
TINY_GEMMA3_OVERRIDES = {
    "vocab_size": 640, "context_length": 256, "emb_dim": 64, "n_heads": 4, "n_layers": 6,
    "hidden_dim": 128, "head_dim": 16, "n_kv_groups": 1, "sliding_window": 16,
    "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
    "query_pre_attn_scalar": 16,
}
GEMMA3_BASE = {"qk_norm": True, "rope_local_base": 10_000.0, "rope_base": 1_000_000.0}
GEMMA3_REPOS = ("google/gemma-3-270m-it", "google/gemma-3-270m")

# Special tokens at the ids they have in Gemma 3's tokenizer.json; the real file
# fills ids 5 to 104 with other reserved tokens, here they are placeholders.
SPECIAL_TOKENS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4,
                  **{f"<unused{i}>": 5 + i for i in range(100)},
                  "<start_of_turn>": 105, "<end_of_turn>": 106}
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]

# Gemma 3's chat template (its text-only branches): a system message goes in front
# of the first user message, the assistant is called "model", texts are trimmed.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = \"\" -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def tiny_gemma3_config():
    """The tiny Gemma 3 behind the fake hub repositories, in float32."""
    return {**GEMMA3_BASE, **TINY_GEMMA3_OVERRIDES, "dtype": torch.float32}


def hf_gemma3_config(cfg):
    """A transformers Gemma3TextConfig equivalent to our configuration dict `cfg`."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        **hf_sizes(cfg), num_key_value_heads=cfg["n_kv_groups"], head_dim=cfg["head_dim"],
        sliding_window=cfg["sliding_window"], layer_types=list(cfg["layer_types"]),
        query_pre_attn_scalar=cfg["query_pre_attn_scalar"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": cfg["rope_local_base"]},
            "full_attention": {"rope_type": "default", "rope_theta": cfg["rope_base"]},
        },
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=[1, 106], bos_token_id=2,
        attn_implementation="eager",  # the textbook formula, as the reference
    )


def random_hf_gemma3(cfg, seed=0):
    """A Gemma3ForCausalLM with random weights in which every tensor differs."""
    from transformers import Gemma3ForCausalLM

    return random_hf_model(Gemma3ForCausalLM, hf_gemma3_config(cfg), seed)


def gemma_style(tokenizer, bos_id):
    """Gemma's normaliser (spaces as "▁"), decoder (byte fallback) and <bos> in front."""
    from tokenizers import decoders, normalizers, processors

    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                           decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)])
    return tokenizer


def learn_merges(text, vocab_size):
    """Character-level BPE on Gemma's normalised text: (vocab, merges).

    The vocabulary starts with the special tokens, the 256 byte-fallback tokens
    and the text's characters; the most frequent adjacent pair is merged until
    `vocab_size` tokens exist. Merges stay inside "▁word" pieces.
    """
    vocab = {**SPECIAL_TOKENS}
    for token in BYTE_TOKENS + sorted(set(text.replace(" ", "▁"))):
        vocab.setdefault(token, len(vocab))
    pieces = Counter(tuple(piece) for piece in re.findall(r"▁?[^▁]+|▁+", text.replace(" ", "▁")))
    merges = []
    while len(vocab) < vocab_size:
        pairs = pair_counts(pieces)
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        merged = best[0] + best[1]
        vocab.setdefault(merged, len(vocab))
        pieces = Counter({merge_pair(piece, best, merged): count
                          for piece, count in pieces.items()})
    return vocab, merges


def write_gemma_tokenizer(folder, vocab_size=TINY_GEMMA3_OVERRIDES["vocab_size"]):
    """Write tokenizer.json and tokenizer_config.json as in Gemma 3's repositories."""
    from tokenizers import AddedToken, Tokenizer, pre_tokenizers
    from tokenizers.models import BPE

    vocab, merges = learn_merges(TRAINING_TEXT, vocab_size)
    tokenizer = gemma_style(Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                                          fuse_unk=True, byte_fallback=True)),
                            SPECIAL_TOKENS["<bos>"])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                  for token in SPECIAL_TOKENS])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    write_tokenizer_config(folder, GEMMA3_CHAT_TEMPLATE, tokenizer_class="GemmaTokenizer",
                           bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                           unk_token="<unk>", mask_token="<mask>", add_bos_token=True,
                           add_eos_token=False, clean_up_tokenization_spaces=False)
    return folder / "tokenizer.json"


def write_gemma3_repo(folder):
    """What the notebooks download from a Gemma 3 270M repository, for the tiny model:
    `model.safetensors` (Gemma3ForCausalLM's names, tied head left out, as on the hub),
    `config.json` and the tokenizer files."""
    random_hf_gemma3(tiny_gemma3_config()).save_pretrained(folder)
    write_gemma_tokenizer(folder)


HUB_REPOS = dict.fromkeys(GEMMA3_REPOS, write_gemma3_repo)
