"""One error type for everything a user can get wrong: the CLI prints its message, no traceback."""


class HarnessError(Exception):
    """Bad input or state, with a message that says what, where, and what was expected."""


def did_you_mean(name: str, known) -> str:
    """``"; did you mean 'a', 'b'?"`` with the known names closest to a mistyped ``name``, or ``""``."""
    import difflib

    known = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    lowered = {k.lower().replace("_", "-"): k for k in known}
    exact = lowered.get(name.lower().replace("_", "-"))
    if exact is not None and exact not in close:
        close.insert(0, exact)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
