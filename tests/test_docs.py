"""Examples in module docstrings run as tests."""

import doctest

import client.note


def test_note_docstring_example() -> None:
    result = doctest.testmod(client.note)
    assert result.attempted > 0 and result.failed == 0
