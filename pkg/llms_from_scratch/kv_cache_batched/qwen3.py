"""Qwen3 (llms_from_scratch.kv_cache_batched.qwen3): not in this repository yet.

The Qwen3 chapter (ch05/11_qwen3) is being written. When it lands, this module
becomes copies of its definitions, checked by tests/copy_forward.py like the
rest of the package (see pkg/llms_from_scratch/README.md).
"""

raise ImportError(
    "llms_from_scratch.kv_cache_batched.qwen3 is not available yet: "
    "the Qwen3 code (ch05/11_qwen3) has not landed in this repository. "
    "Use llms_from_scratch.llama3 or llms_from_scratch.ch04 meanwhile."
)
