"""Run the same operation on two implementations and compare what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from casvfs import CasvfsError


def outcome(action: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", exception type name, reason)``."""
    try:
        return ("ok", action())
    except CasvfsError as error:
        return ("error", (type(error).__name__, error.reason))
    except ValueError as error:
        return ("error", ("ValueError", str(error)))
