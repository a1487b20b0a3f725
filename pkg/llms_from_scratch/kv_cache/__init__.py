"""Models that cache keys and values, and the generation loops that drive them.

Every model here runs `model(token_ids, cache=cache)` on the new tokens only,
continuing at `model.current_pos`, and starts over after `model.reset_kv_cache()`;
`kv_cache.generate` drives any of them.
"""
