"""A key-value cache for a batch of sequences, stored as one tensor per layer."""


class KVCache:
    """Each layer's (keys, values), each (batch_size, heads, tokens, head_dim).

    The whole batch is stored together, so a step computes every row at once;
    `get` and `update` read and write one row.
    """

    def __init__(self, n_layers, batch_size):
        self.batch_size = batch_size
        self.cache = [None] * n_layers

    def get_layer(self, layer_idx):
        return self.cache[layer_idx]

    def update_layer(self, layer_idx, value):
        self.cache[layer_idx] = value

    def get(self, layer_idx, batch_idx):
        layer = self.cache[layer_idx]
        return None if layer is None else tuple(t[batch_idx] for t in layer)

    def update(self, layer_idx, batch_idx, value):
        for stored, row in zip(self.cache[layer_idx], value, strict=True):
            stored[batch_idx] = row

    def reset(self):
        self.cache = [None] * len(self.cache)
