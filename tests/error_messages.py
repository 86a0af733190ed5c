"""What every data error message must be: one line."""


def single_line(error):
    """The message of a `pytest.raises` result, asserting it has no newline."""
    message = str(error.value)
    assert "\n" not in message
    return message
