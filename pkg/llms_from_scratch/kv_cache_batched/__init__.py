"""Batched generation with a key-value cache, for prompts of different lengths.

Prompts are padded on the left to one length, and each row keeps its own
positions (`start_pos`, one per row): a row's first real token is at
position 0, its padding at negative positions, which no real token attends to.
"""
