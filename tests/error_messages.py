"""What every error message must be: one line."""


def single_line(error):
    """The message of a `pytest.raises` result, asserting it has no newline."""
    message = str(error.value)
    assert "\n" not in message
    return message


def one_error_line(result):
    """The one `Error` line of a CliRunner result's output (asserted)."""
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]
