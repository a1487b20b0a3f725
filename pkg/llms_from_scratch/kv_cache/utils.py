"""The key-value cache object passed through a model's layers, and its attention mask."""

import torch


# Copied from ch05/11_qwen3/qwen3_kvcache.py::KVCache
class KVCache:
    """The keys and values of every layer for the tokens seen so far."""

    def __init__(self, n_layers):
        self.cache = [None] * n_layers

    def get(self, layer_idx):
        return self.cache[layer_idx]

    def update(self, layer_idx, value):
        self.cache[layer_idx] = value

    def get_all(self):
        return self.cache

    def reset(self):
        for i in range(len(self.cache)):
            self.cache[i] = None


def attention_allowed_mask(start_pos, num_queries, num_keys, device=None):
    """(rows, 1, queries, keys) booleans: which keys each new token may attend to.

    `start_pos` is the position of the first new token: one number, or one per
    row (the batched cache). The keys are the cached ones followed by the new
    ones, so key j of a row whose first new token is at position p sits at
    p + num_queries - num_keys + j. A token sees the real tokens up to itself;
    a padding token (negative position, left of a shorter prompt) sees only
    itself, so its softmax is defined, and nothing real ever reads it.
    """
    start = torch.as_tensor(start_pos, device=device).reshape(-1, 1)
    key_pos = start + num_queries - num_keys + torch.arange(num_keys, device=device)
    query_pos = key_pos[:, -num_queries:]
    key_pos, query_pos = key_pos[:, None, :], query_pos[:, :, None]
    allowed = (key_pos <= query_pos) & ((key_pos >= 0) | (key_pos == query_pos))
    return allowed[:, None]
