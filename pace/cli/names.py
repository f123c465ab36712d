"""
One rule for queue names in the ``pace`` command: a name read from Resque's
own data (``resque:queues``, a failure record's ``queue`` field) or typed
by an operator is a Resque queue name, colons and all. Its list is
``resque:queue:<name>`` (namespaced), as Resque's ``Resque.enqueue_to``
writes it, so ``foo:bar`` is ``resque:queue:foo:bar``, never the key
``foo:bar``.
"""

from __future__ import annotations

import argparse

from pace.config import namespaced


def queue_key(name: str) -> str:
    """
    The Redis list holding Resque queue ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a queue name must be a non-empty string, not {name!r}")
    return namespaced(f"resque:queue:{name}")


def nonempty(what: str):
    """
    An argparse ``type`` refusing an empty or blank value, naming ``what``.
    """

    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} cannot be empty")
        return text

    check.__name__ = what
    return check


def seconds(text: str) -> float:
    """
    An argparse ``type`` for a number of seconds > 0.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value
