"""The model's one error type: a message that starts with the field's path and says the fix."""

from __future__ import annotations

from collections.abc import Sequence


class ModelError(ValueError):
    """A problem in the inventory model; the message names the field and the fix."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class ModelErrors(ModelError):
    """Several independent problems, reported together so one run shows all of them."""

    def __init__(self, errors: Sequence[ModelError]) -> None:
        lines = "\n".join(f"- {error}" for error in errors)
        super().__init__("", f"{len(errors)} problems in the inventory model:\n{lines}")
        self.errors = list(errors)


def raise_collected(errors: Sequence[ModelError]) -> None:
    """Raise nothing, the one error, or all of them (each message once: a host in several
    groups is parsed for each, and its problem is one problem)."""
    flat: list[ModelError] = []
    for error in errors:
        for one in error.errors if isinstance(error, ModelErrors) else [error]:
            if all(str(one) != str(seen) for seen in flat):
                flat.append(one)
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise ModelErrors(flat)
