"""`generate`: greedy, temperature and top-k sampling, end-of-text, long prompts."""

import pytest
import torch
import torch.nn as nn
from support.course_imports import import_course_module

ch05 = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
ch05_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")

CONFIG = {**ch05.MODEL_CONFIGS["tiny"], "context_length": 8, "vocab_size": 50}
TOY_LOGITS = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    return pc.GPTModel(CONFIG).eval()


class FixedLogits(nn.Module):
    """A stand-in model whose next-token logits are always `logits`."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, idx):
        return self.logits.expand(idx.shape[0], idx.shape[1], -1)


def prompt(length, batch=1):
    return torch.arange(length).remainder(CONFIG["vocab_size"]).repeat(batch, 1)


def test_temperature_zero_is_greedy(model):
    expected = pc.generate_text_simple(model, prompt(3, batch=2), 12, context_size=8)
    assert torch.equal(ch05_utils.generate(model, prompt(3, batch=2), 12, context_size=8), expected)


def test_top_k_one_is_greedy_at_any_temperature(model):
    expected = pc.generate_text_simple(model, prompt(3), 12, context_size=8)
    torch.manual_seed(0)
    out = ch05_utils.generate(model, prompt(3), 12, context_size=8, temperature=5.0, top_k=1)
    assert torch.equal(out, expected)


def test_sampling_is_seeded_and_differs_from_greedy(model):
    def sample(seed):
        torch.manual_seed(seed)
        return ch05_utils.generate(model, prompt(3), 20, context_size=8, temperature=1.5)

    assert torch.equal(sample(1), sample(1))
    greedy = ch05_utils.generate(model, prompt(3), 20, context_size=8)
    assert not torch.equal(sample(1), greedy)


def test_top_k_keeps_only_the_k_most_likely_tokens():
    toy = FixedLogits(TOY_LOGITS)
    torch.manual_seed(0)
    out = ch05_utils.generate(toy, torch.zeros(200, 1, dtype=torch.long), 5, context_size=4,
                        temperature=10.0, top_k=3)
    drawn = set(out[:, 1:].flatten().tolist())
    assert drawn == {0, 3, 7}  # the book's top-3: "forward", "toward", "closer"


def test_high_temperature_spreads_the_samples():
    toy = FixedLogits(TOY_LOGITS)
    torch.manual_seed(0)
    cold = ch05_utils.generate(toy, torch.zeros(500, 1, dtype=torch.long), 1, 4, temperature=0.1)
    hot = ch05_utils.generate(toy, torch.zeros(500, 1, dtype=torch.long), 1, 4, temperature=5.0)
    assert (cold[:, 1] == 3).float().mean() > 0.95  # nearly always the argmax
    assert len(set(hot[:, 1].tolist())) == 9         # every word comes up


def test_eos_id_stops_generation_early(model):
    greedy = ch05_utils.generate(model, prompt(3), 10, context_size=8)
    eos_id = greedy[0, 5].item()  # the third generated token
    first = greedy[0, 3:].tolist().index(eos_id) + 3  # its first occurrence
    out = ch05_utils.generate(model, prompt(3), 10, context_size=8, eos_id=eos_id)
    assert torch.equal(out, greedy[:, :first])  # stops before appending the end token


def test_eos_id_that_never_comes_changes_nothing(model):
    greedy = ch05_utils.generate(model, prompt(3), 10, context_size=8)
    unused = next(t for t in range(CONFIG["vocab_size"]) if t not in greedy.tolist()[0])
    out = ch05_utils.generate(model, prompt(3), 10, context_size=8, eos_id=unused)
    assert torch.equal(out, greedy)


def test_prompt_longer_than_the_context_is_cropped(model):
    long_prompt = prompt(20)  # the model supports 8 tokens
    out = ch05_utils.generate(model, long_prompt, 5, context_size=8)
    assert out.shape == (1, 25)
    assert torch.equal(out[:, :20], long_prompt)
    # only the last 8 tokens matter
    from_tail = ch05_utils.generate(model, long_prompt[:, -8:], 5, context_size=8)
    assert torch.equal(out[:, 20:], from_tail[:, 8:])
