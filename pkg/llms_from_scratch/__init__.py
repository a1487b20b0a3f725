"""The code of *Build a Large Language Model (From Scratch)* as one importable library.

One module per chapter (`ch02` ... `ch07`, `appendix_a`, `appendix_d`,
`appendix_e`), the Llama 3 model (`llama3`), and models with a key-value cache
for fast generation (`kv_cache`, `kv_cache_batched`). Every definition that
also appears in a chapter folder is a copy of the chapter's code, checked by
the repository's `tools/copy_forward.py`. See README.md beside this file.
"""
