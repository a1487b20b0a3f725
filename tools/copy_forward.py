"""Check (and repair) the copy-forward convention.

Each chapter copies the earlier code it needs, so every folder runs on its
own. Copies drift when someone edits one of them. This module finds

- every top-level function, class or module-level constant (an ALL_CAPS name
  assigned at the top level, such as `GPT_CONFIG_124M` or a URL) that is
  defined in more than one place (`.py` files and notebook code cells), and
  reports the copies whose source differs from the definition's home;
- copies without their marker: every copy carries one marker comment on the
  line directly above it, naming its home,

      # Copied from ch02/01_main-chapter-code/ch02.ipynb::GPTDatasetV1

  and a copy kept under another name names its source and the rename,

      # Copied from ch02/01_main-chapter-code/timing.py::synchronize with synchronize->wait

  Every marker is verified: its source must exist, and the copy must equal it
  (with the rename applied). A function or class that equals another one
  apart from its name but has no marker is reported, and so is an informal
  "# From chapter N" comment above a definition (the marker replaces it);
- whole copied files (`downloads.py`): each copy is its home's text below one
  first line `# Copied from HOME_PATH` (its definitions need no markers of their own).

    python tools/copy_forward.py          # report problems, exit 1 if any
    python tools/copy_forward.py --fix    # rewrite copies from their homes, add markers

After merging branches that add copies, `--fix` adds their markers (and turns
"# From chapter N" comments into markers); run it, then the check again.
"""

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent

# The rule, word for word as CONTRIBUTING.md states it (a test compares them).
HOME_RULE = (
    "The home of a name is the main notebook that introduces it: the earliest "
    "`chNN.ipynb` or `appendix-X.ipynb` that defines it (chapters before appendices), "
    "so appendix E's LoRA code lives in appendix E even though a chapter 7 exercise "
    "uses it first. A name that no main notebook defines lives in the earliest chapter "
    "that defines it: the files of its main code folder first, then its bonus folders "
    "(each group in path order). `previous_chapters.py` is a home only when no other "
    "file defines the name. The package `pkg/llms_from_scratch` comes last: it is the "
    "home only of the names no chapter folder defines."
)

# Folders that are not course code (the tests and the repository tools have their own helpers).
EXCLUDED_TOP_LEVEL = {"tests", "tools"}

# The installable package: copies of the chapters' code, home of its own additions.
PACKAGE_FOLDER = "pkg"

# Names every script may define in its own way.
SCRIPT_ENTRY_POINTS = {"main", "parse_args", "build_parser", "run_from_command_line", "SETTINGS"}

# Files copied whole into every folder that needs them: file name -> home.
WHOLE_FILE_HOMES = {
    "downloads.py": "ch02/01_main-chapter-code/downloads.py",
    "script_helpers.py": "ch02/01_main-chapter-code/script_helpers.py",
    "llm_client.py": "ch07/02_dataset-utilities/llm_client.py",
    "kv_gpt_skeleton.py": "ch04/04_gqa/kv_gpt_skeleton.py",
    "gpt_with_kv_mha.py": "ch04/04_gqa/gpt_with_kv_mha.py",
}

# Deliberate variants: (name, repository-relative path) -> why it differs.
# Variants registered with the same reason form their own family: they must be
# identical to each other (the family's home is chosen as for any name).
CH06_CLASSIFICATION_LOSS = ("chapter 6 classifies from the last token's logits "
                            "instead of predicting every next token")
# Gemma 3 (ch05/12_gemma3): the book's names for Gemma's own versions of these blocks
GEMMA3_RMSNORM = "Gemma 3's RMSNorm: zero-initialised scale applied as (1 + scale), eps 1e-6"
GEMMA3_FEEDFORWARD = "Gemma 3's gated feed-forward network: a GELU (tanh) gate instead of SiLU"
GEMMA3_ATTENTION = "Gemma 3's attention: q/k norms, query_pre_attn_scalar, a boolean mask"
GEMMA3_BLOCK = "Gemma 3's block: four norms, sliding-window or full attention by layer type"
GEMMA3_ATTENTION_KV = "Gemma 3's attention with a KV cache: forward(..., start_pos, cache)"
GEMMA3_BLOCK_KV = "Gemma 3's block with a KV cache: forward(..., start_pos, cache)"
GEMMA3_GENERATE_KV = "the Gemma 3 KV notebook's streaming generator: prompt once, then one token"

NEWER_MODELS_SWIGLU = ("the SwiGLU FeedForward of the newer model notebooks (fc1/fc2/fc3 in "
                       "cfg['dtype']), not GPT's GELU network")
NEWER_MODELS_MEMORY = "the newer model notebooks' memory estimate (parameters, gradients, buffers)"
OLMO3_NB = "ch05/13_olmo3/standalone-olmo3.ipynb"
OLMO3_KV_NB = "ch05/13_olmo3/standalone-olmo3-plus-kv-cache.ipynb"
AYA_NB = "ch05/15_tiny-aya/standalone-tiny-aya.ipynb"
AYA_KV_NB = "ch05/15_tiny-aya/standalone-tiny-aya-plus-kv-cache.ipynb"
NEWER_MODELS_KVCACHE = "the newer model notebooks' per-layer KVCache(n_layers)"
OLMO3_RMSNORM = "Olmo 3's RMSNorm: eps 1e-6 by default, as Hugging Face's Olmo3RMSNorm"
OLMO3_ROPE = "Olmo 3's RoPE tables with YaRN scaling (the book's signature)"
QWEN3_5_FEEDFORWARD = "Qwen3.5's SwiGLU (fc1, fc2, fc3, no bias, dtype from cfg), not a GELU MLP"
QWEN3_5_RMSNORM = "Qwen3.5's zero-centred RMSNorm: weight starts at 0, scales by (1 + weight)"
# The chapter 4 bonus folders 04-08 share one KV-cache baseline file (copied whole).
CH04_KV_VARIANT_FOLDERS = ("04_gqa", "05_mla", "06_swa", "07_moe", "08_deltanet")
CH04_KV_MHA = ("the book's KV-cache MultiHeadAttention of the ch04 bonus scripts: no context "
               "length, a cache of (batch, tokens, heads, head_dim)")
CH04_KV_GPT = "the book's KV-cache GPTModel of the ch04 bonus scripts, built on KVGPTModel"
VARIANTS = {
    ("GPT2_SIZES", "ch04/02_performance-analysis/performance.py"):
        "keyed by the short size names its --sizes flag takes (124M), not the book's labels",
    ("TEST_MODE_CONFIG", "ch07/01_main-chapter-code/gpt_instruction_finetuning.py"):
        "chapter 7's test mode needs a 256-token context for its prompts, not chapter 6's",
    ("calc_loss_batch", "ch06/01_main-chapter-code/ch06.ipynb"): CH06_CLASSIFICATION_LOSS,
    ("calc_loss_batch", "ch06/01_main-chapter-code/gpt_class_finetune.py"):
        CH06_CLASSIFICATION_LOSS,
    ("precompute_rope_params", "ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb"):
        "Llama 2's version; the next notebook (the home) adds freq_config for Llama 3.1",
    ("calc_loss_batch", "appendix-E/01_main-chapter-code/previous_chapters.py"):
        CH06_CLASSIFICATION_LOSS,
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache.py"):
        "the book's KV-cache GPTModel: forward(in_idx, use_cache=False) and reset_kv_cache()",
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized KV-cache GPTModel: a sliding window over a preallocated cache",
    ("generate_text_simple_cached", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized version: chunked prefill for the windowed cache",
    ("calc_loss_batch", "pkg/llms_from_scratch/ch06.py"): CH06_CLASSIFICATION_LOSS,
    ("RMSNorm", "ch05/12_gemma3/standalone-gemma3.ipynb"): GEMMA3_RMSNORM,
    ("RMSNorm", "ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb"): GEMMA3_RMSNORM,
    ("RMSNorm", "ch05/12_gemma3/standalone_gemma3.py"): GEMMA3_RMSNORM,
    ("FeedForward", "ch05/12_gemma3/standalone-gemma3.ipynb"): GEMMA3_FEEDFORWARD,
    ("FeedForward", "ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb"): GEMMA3_FEEDFORWARD,
    ("FeedForward", "ch05/12_gemma3/standalone_gemma3.py"): GEMMA3_FEEDFORWARD,
    ("GroupedQueryAttention", "ch05/12_gemma3/standalone-gemma3.ipynb"): GEMMA3_ATTENTION,
    ("TransformerBlock", "ch05/12_gemma3/standalone-gemma3.ipynb"): GEMMA3_BLOCK,
    ("Gemma3Model", "ch05/12_gemma3/standalone-gemma3.ipynb"):
        "Gemma 3 without a cache; the KV notebook (the home) adds start_pos and a KVCache",
    ("GroupedQueryAttention", "ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb"):
        GEMMA3_ATTENTION_KV,
    ("GroupedQueryAttention", "ch05/12_gemma3/standalone_gemma3.py"): GEMMA3_ATTENTION_KV,
    ("TransformerBlock", "ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb"): GEMMA3_BLOCK_KV,
    ("TransformerBlock", "ch05/12_gemma3/standalone_gemma3.py"): GEMMA3_BLOCK_KV,
    ("generate_text_basic_stream", "ch05/12_gemma3/standalone-gemma3-plus-kvcache.ipynb"):
        GEMMA3_GENERATE_KV,
    ("generate_text_basic_stream", "ch05/12_gemma3/standalone_gemma3.py"): GEMMA3_GENERATE_KV,
    # ch05/13_olmo3: the book repository's Olmo 3 names, each with Olmo 3's own body
    ("FeedForward", OLMO3_NB): NEWER_MODELS_SWIGLU,
    ("FeedForward", OLMO3_KV_NB): NEWER_MODELS_SWIGLU,
    ("calc_model_memory_size", OLMO3_NB): NEWER_MODELS_MEMORY,
    ("calc_model_memory_size", OLMO3_KV_NB): NEWER_MODELS_MEMORY,
    ("RMSNorm", OLMO3_NB): OLMO3_RMSNORM,
    ("RMSNorm", OLMO3_KV_NB): OLMO3_RMSNORM,
    ("compute_rope_params", OLMO3_NB): OLMO3_ROPE,
    ("compute_rope_params", OLMO3_KV_NB): OLMO3_ROPE,
    ("apply_chat_template", OLMO3_NB): "Olmo 3's ChatML turn, as the book repository writes it",
    ("apply_chat_template", OLMO3_KV_NB): "Olmo 3's ChatML turn, as the book repository writes it",
    ("apply_rope", OLMO3_NB): "Olmo 3's RoPE rotation for whole sequences (positions from 0)",
    ("apply_rope", OLMO3_KV_NB): "Olmo 3's KV-cache RoPE rotation: positions from `offset`",
    ("GroupedQueryAttention", OLMO3_NB):
        "Olmo 3's attention: QK-norm over the whole projection, sliding-window layers",
    ("GroupedQueryAttention", OLMO3_KV_NB):
        "Olmo 3's KV-cache attention: returns (output, next_cache)",
    ("TransformerBlock", OLMO3_NB): "Olmo 3's post-norm block with a layer type",
    ("TransformerBlock", OLMO3_KV_NB): "Olmo 3's post-norm KV-cache block: returns (x, next_cache)",
    ("Olmo3Model", OLMO3_NB): "the book's Olmo 3 without a cache",
    ("Olmo3Model", OLMO3_KV_NB): "the book's KV-cache Olmo 3: forward(ids, cache=None)",
    ("generate_text_basic_stream", OLMO3_NB): "greedy streaming without a cache (Olmo 3)",
    ("generate_text_basic_stream", OLMO3_KV_NB): "greedy streaming with a KV cache (Olmo 3)",
    ("KVCache", OLMO3_KV_NB): NEWER_MODELS_KVCACHE,
    # ch05/15_tiny-aya: the book repository's Tiny Aya names, each with Tiny Aya's own body
    ("FeedForward", AYA_NB): NEWER_MODELS_SWIGLU,
    ("FeedForward", AYA_KV_NB): NEWER_MODELS_SWIGLU,
    ("calc_model_memory_size", AYA_NB): NEWER_MODELS_MEMORY,
    ("calc_model_memory_size", AYA_KV_NB): NEWER_MODELS_MEMORY,
    ("KVCache", AYA_KV_NB): NEWER_MODELS_KVCACHE,
    ("compute_rope_params", AYA_NB): "Tiny Aya's RoPE tables: angles repeated for adjacent pairs",
    ("compute_rope_params", AYA_KV_NB):
        "Tiny Aya's RoPE tables: angles repeated for adjacent pairs",
    ("apply_rope", AYA_NB): "Tiny Aya's RoPE: adjacent pairs rotated, positions from 0",
    ("apply_rope", AYA_KV_NB): "Tiny Aya's KV-cache RoPE: adjacent pairs, positions from offset",
    ("apply_chat_template", AYA_NB): "Tiny Aya's (Cohere's) chat turn",
    ("apply_chat_template", AYA_KV_NB): "Tiny Aya's (Cohere's) chat turn",
    ("hf_names", AYA_NB): "Tiny Aya's Hugging Face tensor names (no QK-norm, one norm per block)",
    ("hf_names", AYA_KV_NB):
        "Tiny Aya's Hugging Face tensor names (no QK-norm, one norm per block)",
    ("GroupedQueryAttention", AYA_NB):
        "Tiny Aya's attention: RoPE in sliding-window layers only (NoPE in full layers)",
    ("GroupedQueryAttention", AYA_KV_NB):
        "Tiny Aya's KV-cache attention: returns (output, next_cache)",
    ("TransformerBlock", AYA_NB): "Tiny Aya's parallel block (one norm for both branches)",
    ("TransformerBlock", AYA_KV_NB): "Tiny Aya's parallel KV-cache block: returns (x, next_cache)",
    ("TinyAyaModel", AYA_NB): "the book's Tiny Aya without a cache",
    ("TinyAyaModel", AYA_KV_NB):
        "the book's KV-cache Tiny Aya: forward(ids, attention_mask, cache)",
    ("generate_text_basic_stream", AYA_NB): "greedy streaming without a cache (stop_token_ids)",
    ("generate_text_basic_stream", AYA_KV_NB): "greedy streaming with a KV cache (stop_token_ids)",
    ("FeedForward", "ch05/16_qwen3.5/qwen3.5.ipynb"): QWEN3_5_FEEDFORWARD,
    ("FeedForward", "ch05/16_qwen3.5/qwen3.5-plus-kv-cache.ipynb"): QWEN3_5_FEEDFORWARD,
    ("RMSNorm", "ch05/16_qwen3.5/qwen3.5.ipynb"): QWEN3_5_RMSNORM,
    ("RMSNorm", "ch05/16_qwen3.5/qwen3.5-plus-kv-cache.ipynb"): QWEN3_5_RMSNORM,
    ("GroupedQueryAttention", "ch05/16_qwen3.5/qwen3.5.ipynb"):
        "Qwen3.5's gated GQA: W_query also yields a sigmoid output gate, QK-norm, partial RoPE",
    ("GroupedQueryAttention", "ch05/16_qwen3.5/qwen3.5-plus-kv-cache.ipynb"):
        "Qwen3.5's gated GQA with a KV cache: forward(..., start_pos, cache) -> (out, next_cache)",
    ("TransformerBlock", "ch05/16_qwen3.5/qwen3.5.ipynb"):
        "Qwen3.5's hybrid block: the token mixer is a Gated DeltaNet or gated GQA by layer_type",
    ("TransformerBlock", "ch05/16_qwen3.5/qwen3.5-plus-kv-cache.ipynb"):
        "Qwen3.5's hybrid block with caches: returns (x, next_cache), takes linear_cache",
    ("Qwen3_5Model", "ch05/16_qwen3.5/qwen3.5.ipynb"):
        "the cache-free Qwen3.5: forward(in_idx)",
    ("generate_text_basic_stream", "ch05/16_qwen3.5/qwen3.5.ipynb"):
        "the cache-free Qwen3.5 generator: reruns the whole sequence each step",
    **{(name, f"ch04/{folder}/gpt_with_kv_mha.py"): reason
       for folder in CH04_KV_VARIANT_FOLDERS
       for name, reason in (("MultiHeadAttention", CH04_KV_MHA), ("GPTModel", CH04_KV_GPT))},
    ("GroupedQueryAttention", "ch04/04_gqa/gpt_with_kv_gqa.py"):
        "the ch04 bonus GQA: a KV cache, dropout, no RoPE (Llama's in ch05/07 is another class)",
    ("GPTModel", "ch04/04_gqa/gpt_with_kv_gqa.py"):
        "the book's KV-cache GPTModel with grouped-query attention",
    ("GPTModel", "ch04/05_mla/gpt_with_kv_mla.py"):
        "the book's KV-cache GPTModel with multi-head latent attention",
    ("GPTModel", "ch04/06_swa/gpt_with_kv_swa.py"):
        "the book's KV-cache GPTModel with sliding-window attention layers",
    ("GPTModel", "ch04/07_moe/gpt_with_kv_ffn.py"):
        "the book's KV-cache GPTModel with a SwiGLU feed-forward layer",
    ("GPTModel", "ch04/07_moe/gpt_with_kv_moe.py"):
        "the book's KV-cache GPTModel with mixture-of-experts feed-forward layers",
    ("FeedForward", "ch04/07_moe/gpt_with_kv_ffn.py"):
        "the book's SwiGLU feed-forward layer (fc1, fc2, fc3), not GPT-2's GELU one",
    ("GPTModel", "ch04/08_deltanet/gpt_with_kv_deltanet.py"):
        "the Gated DeltaNet / gated attention hybrid GPTModel with a KV cache",
}
# The package's key-value-cache models: chapter 4's layers under the same names
# (so state dicts load both ways), computing only the new tokens from a cache.
PKG_KV_CACHE = ("the package's KV-cache GPT-2: model(ids, cache=KVCache) continues at "
                "current_pos; same layers and weights as chapter 4's")
PKG_KV_CACHE_BATCHED = ("the package's batched KV-cache GPT-2: per-row positions "
                        "(start_pos) for left-padded prompts; same weights as chapter 4's")
for _name in ("MultiHeadAttention", "TransformerBlock", "GPTModel"):
    VARIANTS[(_name, "pkg/llms_from_scratch/kv_cache/gpt2.py")] = PKG_KV_CACHE
VARIANTS.update({
    ("GPTModel", "pkg/llms_from_scratch/kv_cache_batched/gpt2.py"): PKG_KV_CACHE_BATCHED,
    ("generate_text_simple", "pkg/llms_from_scratch/kv_cache/generate.py"):
        "the book's package: the same greedy ids, fed through model(ids, cache=KVCache)",
    ("generate_text_simple", "pkg/llms_from_scratch/kv_cache_batched/generate.py"):
        "the book's package: left-padded prompts of different lengths, per-row positions",
    ("Llama3Model", "pkg/llms_from_scratch/kv_cache/llama3.py"):
        "the chapter's Llama3Model behind the package's cache protocol (cache=, reset_kv_cache)",
    ("assign", "pkg/llms_from_scratch/llama3.py"):
        "the book package's Llama helper names the tensor in its error (tensor_name)",
    ("TransformerBlockFast", "pkg/llms_from_scratch/llama3.py"):
        "the book package's name for Llama 3's block (RMSNorm, grouped-query attention)",
    ("generate_text_simple_stream", "pkg/llms_from_scratch/kv_cache_batched/generate.py"):
        "the batched stream: left-padded prompts, one token per row and step",
    ("compute_rope_params", "pkg/llms_from_scratch/llama3.py"):
        "the book package's Llama 3 name: precompute_rope_params with freq_config, in a dtype",
    ("KVCache", "pkg/llms_from_scratch/kv_cache_batched/utils.py"):
        "the book's batched cache: KVCache(n_layers, batch_size), rows read one by one",
})
# Qwen3 (ch05/11_qwen3): the book repository's names for Qwen3's own blocks, and the
# KV-cache versions of the model (each family: the module and the notebook that shows it).
QWEN3 = ("Qwen3's version of the name (book repository's ch05/11_qwen3): SwiGLU, QK-norm, "
         "fixed head_dim")
QWEN3_KV = "Qwen3 with the book's KV-cache signatures (start_pos, cache); subclasses of qwen3.py's"
VARIANTS.update({
    (name, f"ch05/11_qwen3/{path}"): QWEN3
    for name, paths in {"FeedForward": ["qwen3.py", "standalone-qwen3.ipynb"],
                        "RMSNorm": ["qwen3.py", "standalone-qwen3.ipynb"],
                        "TransformerBlock": ["qwen3.py", "standalone-qwen3.ipynb"],
                        "GroupedQueryAttention": ["qwen3.py", "standalone-qwen3.ipynb"]}.items()
    for path in paths
})
# The package's Qwen3 (llms_from_scratch.qwen3) joins the chapter's family.
VARIANTS.update({
    (name, "pkg/llms_from_scratch/qwen3.py"): QWEN3
    for name in ("FeedForward", "RMSNorm", "TransformerBlock", "GroupedQueryAttention")
})
VARIANTS.update({
    (name, f"ch05/11_qwen3/{path}"): QWEN3_KV
    for name in ("GroupedQueryAttention", "TransformerBlock", "Qwen3Model",
                 "generate_text_basic_stream")
    for path in ("qwen3_kvcache.py", "standalone-qwen3-plus-kvcache.ipynb")
})
VARIANTS.update({
    (name, "pkg/llms_from_scratch/kv_cache/qwen3.py"): QWEN3_KV
    for name in ("GroupedQueryAttention", "TransformerBlock", "Qwen3Model")
})
QWEN3_BATCHED = ("the package's batched KV-cache Qwen3: per-row positions (start_pos) for "
                 "left-padded prompts; same weights as qwen3.py's")
VARIANTS.update({
    (name, "pkg/llms_from_scratch/kv_cache_batched/qwen3.py"): QWEN3_BATCHED
    for name in ("apply_rope", "GroupedQueryAttention", "TransformerBlock", "Qwen3Model")
})
VARIANTS[("on_start", "ch05/11_qwen3/qwen3-chat-interface/qwen3-chat-interface-multiturn.py")] = (
    "the book repository's handler name; the multi-turn app also starts an empty history")
VARIANTS[("DEVICE", "ch05/11_qwen3/qwen3-chat-interface/qwen3_chat.py")] = (
    "the book repository's chat-app setting: a device name, 'auto' by default")


# Qwen3.5 (ch05/16_qwen3.5): names it shares with the other model notebooks, bodies of its own
QWEN3_5_NBS = ("ch05/16_qwen3.5/qwen3.5.ipynb", "ch05/16_qwen3.5/qwen3.5-plus-kv-cache.ipynb")
for _path in QWEN3_5_NBS:
    VARIANTS.update({
        ("compute_rope_params", _path):
            "Qwen3.5's partial RoPE: tables for the rotated share of a head",
        ("apply_rope", _path): "Qwen3.5's partial RoPE: rotates the first rotary_dim channels only",
        ("LAYER_TYPES", _path): "Qwen3.5's layer types: Gated DeltaNet (linear) and full attention",
        ("check_layer_types", _path): "checks Qwen3.5's layer types (linear and full attention)",
    })
VARIANTS.update({
    ("l2norm", _path): "Qwen3.5's l2norm, written to match Hugging Face's (eps inside the root)"
    for _path in QWEN3_5_NBS
})
VARIANTS.update({
    ("MoEFeedForward", "ch05/11_qwen3/qwen3.py"): QWEN3,
    ("MoEFeedForward", "ch05/11_qwen3/standalone-qwen3-moe.ipynb"): QWEN3,
})
VARIANTS.update({
    ("KVCache", QWEN3_5_NBS[1]):
        "Qwen3.5's cache also holds each DeltaNet layer's convolution and recurrent state",
    ("generate_text_basic_stream", QWEN3_5_NBS[1]):
        "Qwen3.5's cached generator: one cache for attention and DeltaNet layers",
    ("measure_generation", QWEN3_5_NBS[1]):
        "the Qwen3.5 KV notebook's timing: cached and uncached runs of its own generators",
})

# Gemma 4 (ch05/17_gemma4): the book's names, each notebook's own variant.
GEMMA4_ROPE = ("Gemma 4's RoPE tables: rope_type 'proportional' rotates only a fraction of "
               "the frequency pairs (the rest get frequency 0)")
GEMMA4 = "ch05/17_gemma4/standalone-gemma4.ipynb"
GEMMA4_KV = "ch05/17_gemma4/standalone-gemma4-plus-kvcache.ipynb"
VARIANTS.update({
    ("compute_rope_params", GEMMA4): GEMMA4_ROPE,
    ("compute_rope_params", GEMMA4_KV): GEMMA4_ROPE,
    ("apply_rope", GEMMA4): "the cache-free Gemma 4: rotates positions 0..seq-1 (no offset)",
    ("Gemma4Attention", GEMMA4):
        "the cache-free Gemma 4 attention: forward(..., shared_kv, return_kv)",
    ("Gemma4DenseBlock", GEMMA4):
        "the cache-free Gemma 4 block: forward(..., shared_kv, return_kv)",
    ("Gemma4DenseModel", GEMMA4): "the cache-free Gemma 4: forward(input_ids)",
    ("generate_text_basic_stream", GEMMA4):
        "the cache-free Gemma 4 generator: reruns the whole sequence each step",
})

# Gemma 4 (ch05/17_gemma4): names it shares with earlier folders, bodies of its own
GEMMA4_NBS = ("ch05/17_gemma4/standalone-gemma4.ipynb",
              "ch05/17_gemma4/standalone-gemma4-plus-kvcache.ipynb")
for _path in GEMMA4_NBS:
    VARIANTS.update({
        ("attend", _path): "Gemma 4's attention core: scaling 1.0 after q/k norms, shared KV",
        ("GemmaTokenizer", _path): "Gemma 4's tokenizer: turns open <|turn>, close <turn|>",
        ("apply_chat_template", _path): "Gemma 4's chat format: <|turn>role ... <turn|>",
    })
VARIANTS.update({
    ("apply_rope", GEMMA4_NBS[1]): "Gemma 4's RoPE with an offset for cached positions",
    ("generate_text_basic_stream", GEMMA4_NBS[1]):
        "Gemma 4's cached generator: shared-KV layers read their source layer's cache",
    ("MoEFeedForward", "pkg/llms_from_scratch/qwen3.py"): QWEN3,
})
# ch05/14: chapter 5's loop for Llama 3.2 and Qwen3 (the book repository's ch05/14 names).
VARIANTS.update({
    ("create_dataloader_v1", "ch05/14_ch05_with_other_llms/previous_chapters.py"):
        "the book's ch05/14 signature: takes the tokenizer (Llama's or Qwen's, not GPT-2's)",
    ("generate_and_print_sample", "ch05/14_ch05_with_other_llms/previous_chapters.py"):
        "RoPE models have no pos_emb: the context length is the length of the cos table",
})
# ch05/14's copies of Qwen3's blocks join ch05/11_qwen3's family (the same reason string).
VARIANTS.update({
    (name, "ch05/14_ch05_with_other_llms/qwen3.py"):
        "Qwen3's version of the name (book repository's ch05/11_qwen3): SwiGLU, QK-norm, "
        "fixed head_dim"
    for name in ("FeedForward", "RMSNorm", "TransformerBlock", "GroupedQueryAttention")
})
VARIANTS.update({
    ("LLAMA32_CONFIG", "ch05/14_ch05_with_other_llms/ch05-llama32.ipynb"):
        "the book's ch05/14 training configuration: 1B plus overrides and train_context_length",
    ("QWEN3_CONFIG", "ch05/14_ch05_with_other_llms/ch05-qwen3.ipynb"):
        "the book's ch05/14 training configuration: 0.6B plus overrides and train_context_length",
    ("compute_rope_params", "pkg/llms_from_scratch/llama3.py"):
        "the package's Llama 3 RoPE (freq_config); Qwen3's (ch05/11) has no frequency scaling",
    ("SettingError", "ch05/10_llm-training-speed/speed_ladder.py"):
        "the ladder's settings have no flag table: flag_of(key) names the flag instead",
})

KNOB_TAGS = {"parameters", "injected-parameters"}
CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
MARKER = re.compile(
    r"#\s*Copied from\s+(?P<path>[^\s:]+)(?:::(?P<name>\w+))?"
    r"(?:\s+with\s+(?P<renames>\w+->\w+(?:\s*,\s*\w+->\w+)*))?"
    r"(?:\s+# noqa: E501)?\s*$"
)
# ruff's line-length (pyproject.toml): a longer marker line ends with a noqa for E501.
MAX_LINE_LENGTH = 100
# The unchecked ways copies used to be marked: "# From chapter 4 (gpt.py)",
# "# From appendix E", "# From ch06/02_bonus_...", "# Home: PATH", "# the same
# helper as in PATH (its home)".
INFORMAL_MARKER = re.compile(
    r"#\s*(?:From (?:chapters?|appendix|ch\d\d/)|Home:|the same helper as in\b).*",
    re.IGNORECASE)


@dataclass
class Marker:
    """A `# Copied from PATH[::NAME] [with A->B, ...]` comment above a definition."""

    path: str
    name: str | None
    renames: list = field(default_factory=list)  # [(old, new), ...]
    written: str | None = None  # the line as it stands in the file (None for a new marker)

    def text(self):
        line = f"# Copied from {self.path}"
        if self.name:
            line += f"::{self.name}"
        if self.renames:
            line += " with " + ", ".join(f"{old}->{new}" for old, new in self.renames)
        return line

    def line(self, indent=""):
        """The marker as a source line: `text()`, with `# noqa: E501` when too long."""
        line = indent + self.text()
        return line if len(line) <= MAX_LINE_LENGTH else line + "  # noqa: E501"


@dataclass
class Definition:
    name: str
    path: str             # repository-relative, with forward slashes
    cell: int | None      # notebook cell index, None for .py files
    start: int            # first line (0-based) within the file or cell
    end: int              # one past the last line
    source: str
    shape: str | None = None     # the code with its own name blanked (defs/classes only)
    marker: Marker | None = None
    informal: bool = False  # a "# From chapter N" comment in the comments above it

    def location(self):
        return self.path if self.cell is None else f"{self.path} (cell {self.cell})"


@dataclass
class Problem:
    """One broken copy: `message` says what; `fix` (a repair), when there is one."""

    message: str
    path: str
    kind: str                       # "drift", "marker", "unmarked", "informal", "file"
    copy: Definition | None = None
    replacement: str | None = None  # new source for the copy ("drift"), home ("file")
    marker: Marker | None = None    # the marker the copy needs ("unmarked", "marker")

    def has_fix(self):
        return (self.replacement is not None or self.marker is not None
                or self.kind == "informal")


def rename(source, renames):
    """`source` with each whole-word `old` replaced by `new`, all in one pass."""
    if not renames:
        return source
    table = dict(renames)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, table)) + r")\b")
    return pattern.sub(lambda match: table[match.group(1)], source)


def _without_magics(source):
    """Blank out IPython magics and shell escapes so the cell parses as Python."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def _shape(node):
    """The definition's syntax tree with its own name blanked, as text.

    Two definitions with the same shape are the same code under two names
    (comments and layout aside).
    """
    original = node.name
    node.name = "_"
    try:
        return ast.dump(node)
    finally:
        node.name = original


def _top_level_definitions(source):
    """(name, start, end, shape) of each top-level def, class or ALL_CAPS constant."""
    tree = ast.parse(_without_magics(source))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield node.name, first - 1, node.end_lineno, _shape(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (len(targets) == 1 and isinstance(targets[0], ast.Name)
                    and CONSTANT_NAME.fullmatch(targets[0].id)):
                yield targets[0].id, node.lineno - 1, node.end_lineno, None


def _comments_above(lines, start):
    """Index of the first line of the run of comment lines directly above `start`."""
    first = start
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return first


def _has_informal_marker(lines, start):
    return any(INFORMAL_MARKER.fullmatch(line.strip())
               for line in lines[_comments_above(lines, start):start])


def _marker_above(lines, start):
    if start == 0:
        return None
    match = MARKER.fullmatch(lines[start - 1].strip())
    if match is None:
        return None
    renames = []
    if match.group("renames"):
        renames = [tuple(pair.strip().split("->")) for pair in match.group("renames").split(",")]
    return Marker(match.group("path"), match.group("name"), renames, lines[start - 1].strip())


def _course_files(root):
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] in EXCLUDED_TOP_LEVEL or "__pycache__" in relative.parts:
            continue
        if path.suffix in {".py", ".ipynb"} and path.is_file():
            yield path, relative.as_posix()


def _sources_of(path):
    """(cell index or None, source text, holds knobs?) for each code unit in the file.

    A notebook's cell tagged `parameters` holds that notebook's own knobs
    (`NUM_EPOCHS = 10`), and so does the `injected-parameters` cell a reduced run
    adds after it: same names in two notebooks are not copies.
    """
    if path.suffix == ".py":
        yield None, path.read_text(), False
        return
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            yield index, cell.source, bool(KNOB_TAGS & set(tags))


def find_definitions(root=REPO_ROOT):
    root = Path(root)
    definitions = []
    for path, relative in _course_files(root):
        for cell, source, holds_knobs in _sources_of(path):
            lines = source.split("\n")
            try:
                found = list(_top_level_definitions(source))
            except SyntaxError as err:
                raise SyntaxError(f"{relative} (cell {cell}): {err}") from None
            for name, start, end, shape in found:
                if holds_knobs and shape is None:
                    continue
                body = "\n".join(lines[start:end])
                definitions.append(Definition(name, relative, cell, start, end, body, shape,
                                              _marker_above(lines, start),
                                              _has_informal_marker(lines, start)))
    return definitions


def home_rank(path, cell=None, start=0):
    """Sort key of a definition's place: the smallest key is the home (HOME_RULE)."""
    parts = path.split("/")
    match = re.fullmatch(r"(ch|appendix-)(\w+)", parts[0])
    if match and match.group(1) == "ch":
        chapter = (0, int(match.group(2)), "")
    elif match:
        chapter = (1, 0, match.group(2))
    else:
        chapter = (2, 0, parts[0])
    filename = parts[-1]
    is_main_notebook = re.fullmatch(rf"{parts[0]}\.ipynb", filename) is not None
    in_main_folder = len(parts) > 1 and parts[1] == "01_main-chapter-code"
    is_copy_file = filename == "previous_chapters.py"
    in_package = parts[0] == PACKAGE_FOLDER
    return (in_package, is_copy_file, not is_main_notebook, chapter, not in_main_folder,
            path, cell or 0, start)


def _rank(definition):
    return home_rank(definition.path, definition.cell, definition.start)


def _registered(definition, variants):
    return (definition.name in SCRIPT_ENTRY_POINTS
            or (definition.name, definition.path) in variants)


def group_copies(definitions, variants=None):
    """{key: [home, copy, copy, ...]} for names defined more than once.

    The key is the name, or (name, reason) for registered variants: variants
    registered with the same reason form a family of their own.
    """
    variants = VARIANTS if variants is None else variants
    groups = {}
    for definition in definitions:
        if definition.name in SCRIPT_ENTRY_POINTS:
            continue
        reason = variants.get((definition.name, definition.path))
        key = definition.name if reason is None else (definition.name, reason)
        groups.setdefault(key, []).append(definition)
    return {key: sorted(group, key=_rank)
            for key, group in groups.items() if len(group) > 1}


def _drifted_copies(definitions, variants):
    problems = []
    for group in group_copies(definitions, variants).values():
        home = group[0]
        for copy in group[1:]:
            if copy.source != home.source:
                problems.append(Problem(
                    f"{copy.name}: {copy.location()} differs from its home {home.location()}",
                    copy.path, "drift", copy, home.source))
    return problems


def _marker_problems(definitions):
    """Each marked copy must equal its named source with the renames applied."""
    by_place = {}
    for definition in definitions:
        by_place.setdefault((definition.path, definition.name), []).append(definition)
    problems = []
    for copy in definitions:
        marker = copy.marker
        if marker is None:
            continue
        sources = by_place.get((marker.path, marker.name or copy.name))
        if not sources:
            problems.append(Problem(
                f"{copy.name}: {copy.location()} says it is copied from "
                f"{marker.path}::{marker.name or copy.name}, which does not exist",
                copy.path, "marker", copy))
            continue
        expected = rename(sources[0].source, marker.renames)
        if copy.source != expected:
            problems.append(Problem(
                f"{copy.name}: {copy.location()} differs from {marker.text()[2:]}",
                copy.path, "drift", copy, expected))
    return problems


def _unmarked_renamed_copies(definitions, variants):
    """Functions or classes equal to another one but for the name, with no marker."""
    by_shape = {}
    for definition in definitions:
        if definition.shape is not None and not _registered(definition, variants):
            by_shape.setdefault(definition.shape, []).append(definition)
    problems = []
    for group in by_shape.values():
        home = min(group, key=_rank)
        for copy in group:
            if copy.name == home.name or copy.marker is not None:
                continue
            marker = Marker(home.path, home.name, [(home.name, copy.name)])
            problems.append(Problem(
                f"{copy.name}: {copy.location()} is {home.name} from {home.location()} "
                f"under another name; mark it with `{marker.text()}`",
                copy.path, "unmarked", copy, marker=marker))
    return problems


def _whole_file_copies(definitions):
    return {d.path for d in definitions
            if d.path.split("/")[-1] in WHOLE_FILE_HOMES
            and d.path != WHOLE_FILE_HOMES[d.path.split("/")[-1]]}


def _missing_markers(definitions, variants):
    """Each copy names its home in a marker; informal "From chapter" comments go.

    A copy's marker without a rename must name the home of its group, so a
    reader follows one step to the definition every copy is checked against.
    A marker with a rename is verified by `_marker_problems` and left as it is.
    """
    whole_file_copies = _whole_file_copies(definitions)
    problems = []
    marked = set()
    for group in group_copies(definitions, variants).values():
        home = group[0]
        for copy in group[1:]:
            if copy.path in whole_file_copies or (copy.marker and copy.marker.renames):
                continue
            marked.add(id(copy))
            wanted = Marker(home.path, home.name)
            if copy.marker is None:
                problems.append(Problem(
                    f"{copy.name}: {copy.location()} is a copy of {home.location()} "
                    f"without its marker `{wanted.text()}`", copy.path, "unmarked", copy,
                    marker=wanted))
            elif copy.marker.written != wanted.line():
                problems.append(Problem(
                    f"{copy.name}: {copy.location()} should be marked `{wanted.line()}`, "
                    f"not `{copy.marker.written}`", copy.path, "marker", copy, marker=wanted))
            elif copy.informal:
                problems.append(Problem(
                    f"{copy.name}: {copy.location()} has an informal \"From chapter\" or "
                    "\"Home:\" comment above its marker", copy.path, "marker", copy,
                    marker=wanted))
    for definition in definitions:
        if definition.informal and id(definition) not in marked:
            problems.append(Problem(
                f"{definition.name}: {definition.location()} has an informal "
                "\"From chapter\" or \"Home:\" comment; a copy is marked "
                "`# Copied from PATH::NAME`",
                definition.path, "informal", definition))
    return problems


def whole_file_copy(root, home):
    """The text every copy of the file `home` holds: its marker line, then the home."""
    return f"{Marker(home, None).text()}\n" + (Path(root) / home).read_text()


def _whole_file_problems(root):
    problems = []
    for path, relative in _course_files(root):
        home = WHOLE_FILE_HOMES.get(path.name)
        if home is None or relative == home:
            continue
        if path.read_text() != whole_file_copy(root, home):
            problems.append(Problem(
                f"{relative} differs from its home {home} (copied whole, below the marker "
                f"line `{Marker(home, None).text()}`)", relative, "file", replacement=home))
    return problems


def find_problems(root=REPO_ROOT, variants=None, definitions=None):
    """Every broken copy in the tree under `root`, as `Problem`s.

    `definitions`: the tree's `find_definitions(root)`, when the caller has them.
    """
    root = Path(root)
    variants = VARIANTS if variants is None else variants
    definitions = find_definitions(root) if definitions is None else definitions
    problems = _whole_file_problems(root)
    # A whole-file copy is repaired as a file; its definitions need no second report.
    whole_files = {problem.path for problem in problems}
    # A copy's wrong marker is reported once, by `_missing_markers` (which can fix it).
    problems += [problem for problem in (_drifted_copies(definitions, variants)
                                         + _missing_markers(definitions, variants)
                                         + _marker_problems(definitions)
                                         + _unmarked_renamed_copies(definitions, variants))
                 if problem.path not in whole_files]
    # A copy that is both drifted from its home and its marker's source is reported once.
    unique = {}
    for problem in problems:
        key = (problem.kind, problem.path, id(problem.copy))
        unique.setdefault(key, problem)
    return list(unique.values())


def fix_copies(root=REPO_ROOT, variants=None):
    """Repair every problem that has a repair; return how many were repaired."""
    root = Path(root)
    problems = [p for p in find_problems(root, variants) if p.has_fix()]
    by_file = {}
    for problem in problems:
        if problem.kind == "file":
            (root / problem.path).write_text(whole_file_copy(root, problem.replacement))
        else:
            by_file.setdefault(problem.path, []).append(problem)
    for relative, file_problems in by_file.items():
        _rewrite_file(root / relative, file_problems)
    return len(problems)


def _apply(text, problem):
    lines = text.split("\n")
    copy = problem.copy
    if problem.replacement is not None:
        lines[copy.start:copy.end] = problem.replacement.split("\n")
        return "\n".join(lines)
    # The comments directly above keep their place; informal "From chapter"
    # lines and an old marker go, and the marker (if any) sits right above.
    first = _comments_above(lines, copy.start)
    comments = [line for line in lines[first:copy.start]
                if not INFORMAL_MARKER.fullmatch(line.strip())]
    if problem.marker is not None:
        if comments and MARKER.fullmatch(comments[-1].strip()):
            comments.pop()
        comments.append(problem.marker.line())
    lines[first:copy.start] = comments
    return "\n".join(lines)


def _rewrite_file(path, problems):
    # Bottom-up, so earlier line numbers stay valid after each edit; a copy's
    # new body goes in before the lines above it change.
    problems = sorted(problems, reverse=True, key=lambda p: (
        p.copy.cell or 0, p.copy.start, p.replacement is not None))
    if path.suffix == ".py":
        text = path.read_text()
        for problem in problems:
            text = _apply(text, problem)
        path.write_text(text)
        return
    nb = nbformat.read(path, as_version=4)
    for problem in problems:
        cell = nb.cells[problem.copy.cell]
        cell.source = _apply(cell.source, problem)
    nbformat.write(nb, path)


def main():
    parser = argparse.ArgumentParser(description="Check copy-forward definitions.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fix", action="store_true",
                        help="rewrite copies from their homes and add missing markers")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository to check")
    args = parser.parse_args()
    if args.fix:
        # A repair can reveal another (a fixed marker may now name a drifted source).
        for _ in range(4):
            repaired = fix_copies(args.root)
            print(f"repaired {repaired} copies from their homes")
            if not repaired:
                break
    problems = find_problems(args.root)
    for problem in problems:
        print(problem.message)
    if not problems:
        print("all copies equal their homes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
