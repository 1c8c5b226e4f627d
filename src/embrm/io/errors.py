"""One exception type for bad input, so callers and tests can tell it from bugs."""


class InputError(ValueError):
    """Input that cannot be used: the message names the file, field or shape."""
