"""A family's checked settings: each value checked by one function and kept as the attribute of
the same name. Families keep explicit keyword parameters in their `__init__` or dataclass fields
(the family keywords are read from its signature) and list each check once, here, instead of one
line per setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def keep_checked(owner: object, check: Callable[[str, Any], Any], **values: Any) -> None:
    """Set `owner.<name> = check(name, value)` for each keyword, in the order given (the first
    bad value raises the check's one-line error naming it)."""
    for name, value in values.items():
        setattr(owner, name, check(name, value))
