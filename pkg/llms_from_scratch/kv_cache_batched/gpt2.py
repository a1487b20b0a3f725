"""Chapter 4's GPT model with a batched key-value cache and per-row positions.

Same layers, names and weights as chapter 4's `GPTModel` (state dicts load
both ways). `start_pos` (batch,) gives each row's position of its first new
token; left padding sits at negative positions, which no real token attends
to and which use position 0's embedding (their outputs are never used).
"""

import torch

from ..kv_cache import gpt2
from ..kv_cache.gpt2 import MultiHeadAttention, TransformerBlock  # noqa: F401  (per-row ready)


class GPTModel(gpt2.GPTModel):
    """Chapter 4's GPT model for batches whose rows sit at different positions."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.current_pos = None  # set by reset_kv_cache(batch_size)

    def reset_kv_cache(self, batch_size, device=None):
        self.current_pos = torch.zeros(batch_size, dtype=torch.long, device=device)

    def forward(self, in_idx, cache=None, start_pos=None):
        batch_size, num_tokens = in_idx.shape
        if start_pos is None:
            start_pos = (self.current_pos if cache is not None and self.current_pos is not None
                         else torch.zeros(batch_size, dtype=torch.long, device=in_idx.device))
        if int(start_pos.max()) + num_tokens > self.cfg["context_length"]:
            raise ValueError(f"positions beyond the context length {self.cfg['context_length']}")
        positions = start_pos[:, None] + torch.arange(num_tokens, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions.clamp(min=0)))
        for layer_idx, block in enumerate(self.trf_blocks):
            layer_cache = cache.get_layer(layer_idx) if cache is not None else None
            x, next_cache = block(x, start_pos, cache=layer_cache)
            if cache is not None:
                cache.update_layer(layer_idx, next_cache)
        if cache is not None:
            self.current_pos = start_pos + num_tokens
        return self.out_head(self.final_norm(x))
