"""One exception type for bad input, and one way to print any error as a single line."""


class QfeatError(Exception):
    """A user-facing error: bad config, mismatched model/SAE, unusable data or activations."""


def one_line(err: BaseException | str) -> str:
    """An error as one line: QfeatError's own text, otherwise 'Type: message', with every run of
    whitespace (library messages span lines) folded into one space."""
    if isinstance(err, str):
        text = err
    else:
        text = str(err) if isinstance(err, QfeatError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__
