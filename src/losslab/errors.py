"""The one exception type that means "the user's input is wrong".

The CLI turns a :class:`UserError` into one line on stderr and exit code 2,
never a traceback. Library code raises it for anything a user can fix: an
unknown name, a malformed file, a missing data set.
"""


class UserError(Exception):
    """Bad input from the user; the message is one line that says how to fix it."""


def unknown_choice(kind: str, name: str, choices) -> UserError:
    """``UserError`` for an unknown name, listing the valid ones.

    >>> str(unknown_choice("loss", "foo", ["ns", "hinge"]))
    "unknown loss 'foo'; choose from: hinge, ns"
    """
    return UserError(f"unknown {kind} {name!r}; choose from: {', '.join(sorted(choices))}")
