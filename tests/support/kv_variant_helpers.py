"""Helpers shared by the tests of the chapter 4 bonus folders 04-08 (KV-cache variants)."""

import torch

TINY_CFG = {"vocab_size": 97, "context_length": 40, "emb_dim": 32, "n_heads": 4, "n_layers": 4,
            "drop_rate": 0.0, "qkv_bias": False}
# Small enough for the suite, big enough to run the scripts' real main() offline.
TINY_SCRIPT_ARGS = ["--emb_dim", "32", "--n_heads", "4", "--n_layers", "2",
                    "--max_new_tokens", "5", "--dtype", "fp32", "--device", "cpu"]


def random_ids(batch_size, length, seed=1, vocab_size=TINY_CFG["vocab_size"]):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch_size, length), generator=generator)


def tiny_model(model_class, seed=0, **extra):
    """model_class(TINY_CFG + extra) in float64, eval mode."""
    torch.manual_seed(seed)
    return model_class({**TINY_CFG, **extra}).double().eval()


def assert_cached_equals_uncached(module, model, prompt_length=9, max_new_tokens=25):
    """Cached greedy ids == uncached ids, and a forward pass fed in pieces == all at once.

    The generation covers the context length and beyond (the cache is reset and
    the window recomputed there), the pieces include a multi-token continuation.
    """
    idx = random_ids(2, prompt_length)
    cached = module.generate_text_simple_cached(model, idx, max_new_tokens)
    uncached = module.generate_text_simple_cached(model, idx, max_new_tokens, use_cache=False)
    assert torch.equal(cached, uncached)
    assert module.kv_cache_bytes(model) == 0  # generation resets (frees) the cache

    ids = random_ids(2, 30, seed=2)
    with torch.no_grad():
        whole = model(ids)
        model.reset_kv_cache()
        pieces = [model(ids[:, a:b], use_cache=True) for a, b in ((0, 13), (13, 14), (14, 30))]
        assert model.cached_tokens() == 30
        model.reset_kv_cache()
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-10)


def run_main(module, argv, capsys):
    """Run a script's main(argv); return what it printed."""
    module.main(argv)
    return capsys.readouterr().out


def assert_generation_report(out, max_new_tokens=5):
    assert f"Output: {4 + max_new_tokens} tokens" in out  # "Hello, I am" is 4 tokens
    assert "Time: " in out and " tokens/sec" in out
    assert "Peak RSS of this process: " in out
