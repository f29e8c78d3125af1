"""Docstrings written once for loaders that differ only in a few phrases (CIFAR-10/100, CIFAR-10N/100N)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _fill_line(line: str, parts: dict[str, str]) -> str:
    # A part spanning lines continues at the indentation of the line it is put in, so that the
    # docstring keeps one indentation per block (as inspect.cleandoc and numpydoc expect).
    indent = line[: len(line) - len(line.lstrip())]
    return line.format_map({name: text.replace("\n", "\n" + indent) for name, text in parts.items()})


def fill_docstring(template: str, **parts: str) -> Callable[[F], F]:
    """Decorator giving a function the docstring ``template`` with its ``{name}`` fields set to ``parts``.

    The template holds no other braces. A part's later lines take the indentation of the line it is in:

    >>> @fill_docstring("Load {what}.\\n\\n    Notes\\n    {notes}", what="A", notes="x\\ny")
    ... def load(): ...
    >>> print(load.__doc__)
    Load A.
    <BLANKLINE>
        Notes
        x
        y
    """
    text = "\n".join(_fill_line(line, parts) for line in template.split("\n"))

    def document(function: F) -> F:
        function.__doc__ = text
        return function

    return document
