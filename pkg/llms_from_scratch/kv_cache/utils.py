"""The key-value cache object passed through a model's layers during generation."""


class KVCache:
    """Each layer's (keys, values) of every token the model has seen since `reset()`."""

    def __init__(self, n_layers):
        self.cache = [None] * n_layers

    def get(self, layer_idx):
        return self.cache[layer_idx]

    def update(self, layer_idx, value):
        self.cache[layer_idx] = value

    def get_all(self):
        return self.cache

    def reset(self):
        self.cache = [None] * len(self.cache)
