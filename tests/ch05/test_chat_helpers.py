"""The chat apps' streaming: token by token, the same tokens and text as chapter 5's generate."""

import pytest
import tiktoken
import torch
from support.course_imports import import_course_module
from support.helpers import tiny_gpt_config

FOLDER = "ch05/06_user_interface"


@pytest.fixture(scope="module")
def helpers():
    import_course_module(f"{FOLDER}/downloads.py").cache_gpt2_tokenizer_files()
    return import_course_module(f"{FOLDER}/chat_helpers.py")


@pytest.fixture(scope="module")
def course():
    return import_course_module(f"{FOLDER}/previous_chapters.py")


@pytest.fixture(scope="module")
def model(course):
    torch.manual_seed(0)
    return course.GPTModel(tiny_gpt_config()).eval()


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, 50)])
def test_generate_stream_yields_what_generate_makes(helpers, course, model, temperature, top_k):
    idx = torch.tensor([[464, 3290, 318]])
    torch.manual_seed(123)
    expected = course.generate(model, idx, 12, 16, temperature=temperature, top_k=top_k)
    torch.manual_seed(123)
    streamed = list(helpers.generate_stream(model, idx, 12, 16, temperature=temperature,
                                            top_k=top_k))
    assert streamed == expected[0, 3:].tolist()


def test_generate_stream_stops_before_the_end_of_text_id(helpers, course, model):
    idx = torch.tensor([[464, 3290, 318]])
    greedy = course.generate(model, idx, 6, 16)[0, 3:].tolist()
    stop_at = greedy[3]  # pretend the fourth new token ends the text
    assert stop_at not in greedy[:3]
    streamed = list(helpers.generate_stream(model, idx, 6, 16, eos_id=stop_at))
    assert streamed == greedy[:3]


def test_decode_stream_never_shows_half_a_character(helpers):
    tokenizer = tiktoken.get_encoding("gpt2")
    text = "Café au lait 🙂, naïve 漢字 ok"
    ids = tokenizer.encode(text)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # some tokens are partial bytes
    pieces = list(helpers.decode_stream(ids, tokenizer))
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert len(pieces) > 5  # shown as the tokens arrive, not all at the end


def test_decode_stream_shows_what_is_left_when_the_stream_ends(helpers):
    tokenizer = tiktoken.get_encoding("gpt2")
    ids = tokenizer.encode("Café au lait 🙂, naïve 漢字 ok")
    cut = next(k for k in range(1, len(ids)) if tokenizer.decode(ids[:k]).endswith("\ufffd"))
    ids = ids[:cut]  # the stream ends inside a character's bytes
    pieces = list(helpers.decode_stream(ids, tokenizer))
    assert "".join(pieces) == tokenizer.decode(ids)
    assert pieces[-1].endswith("\ufffd")
