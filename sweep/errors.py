"""One exception type for bad input, so the entry point can print it as a single line."""


class QfeatError(Exception):
    """A user-facing error: bad config, mismatched model/SAE, unusable data or activations."""


def one_line(err: BaseException | str) -> str:
    """An error as one line: QfeatError's own text, otherwise 'Type: first line of message'."""
    if isinstance(err, str):
        text = err
    else:
        text = str(err) if isinstance(err, QfeatError) else f"{type(err).__name__}: {err}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
