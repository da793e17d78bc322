"""The one exception type for mistakes a user can make and fix."""


class UserError(Exception):
    """A problem with the user's input (flag, file, dataset, run directory).

    The command line prints the message, without a traceback, and exits with code 2.
    The message names the flag or file at fault and says how to fix it. Code that raises
    it must not have changed anything on disk yet.
    """


class RunFailed(Exception):
    """A run that cannot go on (it keeps diverging, the disk is full): the message says what
    happened, what on disk is still intact, and what to do. The command line exits with code 1."""
