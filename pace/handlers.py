"""
Loading a handler from configuration: `package.module.attribute` or
`package.module:attribute`. This is the only import Pace ever does on a
user's behalf; a job's class field never imports anything.
"""

from __future__ import annotations

import importlib
from typing import Any


class HandlerNotFound(ValueError):
    """
    The configured handler path does not name a callable.
    """


def load_handler(path: str) -> Any:
    if not isinstance(path, str) or not path.strip():
        raise HandlerNotFound("no handler given: name one as package.module.function")
    path = path.strip()
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise HandlerNotFound(
            f"handler {path!r} names no module: use package.module.function "
            "or package.module:function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise HandlerNotFound(
            f"cannot import module {module_name!r} for handler {path!r}: {type(e).__name__}: {e}"
        ) from e
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerNotFound(
                f"module {module_name!r} has no attribute {attr!r} (handler {path!r})"
            ) from None
    if not callable(obj):
        raise HandlerNotFound(f"handler {path!r} is a {type(obj).__name__}, not callable")
    return obj
