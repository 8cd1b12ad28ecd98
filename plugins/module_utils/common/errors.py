# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Every problem at once: the error collector the IDC description and the Calico plan share.

A checker records each problem as ``path: problem; fix: ...`` and keeps going; at the end
raise_if_any() raises one exception that lists them all, headed by what was checked. What
works but is advised against is a warning in the same form (warn()), kept apart from the errors.
"""

from __future__ import annotations

__all__ = ["ErrorCollector", "ValidationError"]


class ValidationError(ValueError):
    """Input that cannot work; ``errors`` holds one message per problem. Subclasses name the input."""

    # what was checked, as the head of the message says it: "<subject> has 2 errors:"
    subject = "the input"

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        # the list itself as the argument, so the exception survives pickling between processes
        super().__init__(self.errors)

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{self.subject} has {count} error{'' if count == 1 else 's'}:"
        return "\n".join([head] + [f"  - {error}" for error in self.errors])


class ErrorCollector:
    """Collects ``path: problem; fix: ...`` messages; raises the errors together as ``error_class``."""

    error_class: type[ValidationError] = ValidationError

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def fail(self, path: str, problem: str, fix: str) -> None:
        self.errors.append(f"{path}: {problem}; fix: {fix}")

    def warn(self, path: str, problem: str, fix: str) -> None:
        self.warnings.append(f"{path}: {problem}; fix: {fix}")

    def raise_if_any(self) -> None:
        if self.errors:
            raise self.error_class(self.errors)
