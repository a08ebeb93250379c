"""The one exception type a user can act on."""


class UserError(Exception):
    """A problem the user can fix: bad input, missing file, wrong option.

    The CLI prints its message as one line and exits non-zero, without a traceback.
    The message should say what is wrong, where, and how to fix it.
    """
