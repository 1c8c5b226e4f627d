"""Exception types for bad input and a full disk, so callers and tests can tell them from bugs."""


class InputError(ValueError):
    """Input that cannot be used: the message names the file, field or shape."""


class NoSpaceError(OSError):
    """A write failed because its file system is full; the message names the file."""
