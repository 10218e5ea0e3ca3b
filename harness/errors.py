"""One error type for everything a user can get wrong: the CLI prints its message, no traceback."""


class HarnessError(Exception):
    """Bad input or state, with a message that says what, where, and what was expected."""
