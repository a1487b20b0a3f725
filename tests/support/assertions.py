"""Assertions that tests of several chapters share."""

import pytest


def one_line_error(error_type, call):
    """The message of the `error_type` that `call()` raises: it must be one non-empty line."""
    with pytest.raises(error_type) as caught:
        call()
    message = str(caught.value)
    assert message and "\n" not in message
    return message
