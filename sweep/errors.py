"""One exception type for bad input, so the entry point can print it as a single line."""


class QfeatError(Exception):
    """A user-facing error: bad config, mismatched model/SAE, unusable data or activations."""
