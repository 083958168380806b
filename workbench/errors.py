"""User mistakes become WorkbenchError; the CLI edge turns them into one line and exit status 2."""
import difflib


class WorkbenchError(ValueError):
    """A mistake the user can fix: bad recipe key, unknown name, unreadable image, missing weights."""


def first_line(err):
    """The first line of an exception's message, or its type's name when it has none: what a one-line error quotes."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def suggest(word, choices):
    """' Did you mean X?' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
