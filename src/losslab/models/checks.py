"""Checks of network-size arguments shared by the model builders."""

from __future__ import annotations

import operator

from losslab.errors import UserError


def as_shape(shape: object) -> tuple[int, ...]:
    """Tuple of positive ints from ints, numpy integers or a torch.Size; UserError otherwise."""
    message = f"data shape must be positive integers (d,) or (C, H, W), got {shape!r}"
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
        if any(isinstance(s, bool) for s in dims):
            raise TypeError
        dims = tuple(operator.index(s) for s in dims)  # rejects floats and strings
    except TypeError:
        raise UserError(message) from None
    if not dims or min(dims) < 1:
        raise UserError(message)
    return dims


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool); UserError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    return value
