"""How the command line turns its arguments into values without loading pydantic.

Typer reads every parameter, even one left at its default, through a pydantic TypeAdapter
that it builds on first use, and loading pydantic to build them costs each command some
50 ms before it does anything: more than a whole `chordshare ls` spends on its own work.
This CLI's parameters are text, plain numbers, paths, flags and lists of text, so the app's
group (`PlainValues`) and its commands (`PlainCommand`) give each parameter a reading of
its own for those values. For each value it takes, it gives what Typer's would; any other
value (a number written otherwise, bytes) goes to Typer's, which builds its adapter then
and answers as it always does, errors included. A path goes through Typer's own checks.

This leans on parts of Typer that are not its public API (`typer._coercion`,
`typer._param_types`, a parameter's `_runtime_param`). Typer's version is pinned, and
tests/faces/test_face_imports.py fails when a command loads pydantic again; where those
parts are missing, every parameter keeps Typer's own reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer.core import TyperCommand, TyperGroup

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # another Typer: its own reading stays
    RuntimeParam = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from typer._click import Context, Parameter

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_UNREAD = object()  # a value left to Typer's reading


def plain_value(annotation: Any, value: Any) -> Any:
    """`value` read as `annotation` (not a path), or _UNREAD when Typer has to read it."""
    if annotation is str and isinstance(value, str):
        return value
    if annotation in (int, float, bool) and type(value) is annotation:
        return value
    if annotation is int and isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    if annotation is float and isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    texts = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if texts and get_origin(annotation) is list and get_args(annotation) == (str,):
        return list(value)
    return _UNREAD


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainValue(RuntimeParam):
        """One parameter's reading: plain values here, the rest by Typer's."""

        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            if self.annotation is Path and isinstance(value, str) and value:
                # Typer makes the Path with pydantic unless it is one already.
                path = Path(value)
                return coerce_cli_path(
                    path, self.parameter_info, path_type=Path, param=param, ctx=ctx
                )
            plain = plain_value(self.annotation, value)
            if plain is not _UNREAD:
                return plain
            typer_reading = build_runtime_param(self.descriptor)
            return typer_reading._coerce_value(value, param=param, ctx=ctx)


def _read_plainly(params: list[Parameter]) -> list[Parameter]:
    """`params`, each of Typer's given a PlainValue unless it has a reading already or asks
    for more than a plain one (a parser, bounds, another path type, a file)."""
    if RuntimeParam is None:
        return params
    for param in params:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            continue
        descriptor = param.type_descriptor
        info = descriptor.parameter_info
        asks_more = (
            descriptor.file_annotation is not None
            or info.parser is not None
            or info.min is not None
            or info.max is not None
            or info.path_type is not None
            or info.resolve_path
            or info.allow_dash
        )
        if not asks_more:
            param._runtime_param = PlainValue(info, descriptor.annotation, descriptor)
    return params


class PlainValues(TyperGroup):
    """The app's group: its own parameters (the options before the command, --help) read
    plain values."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _read_plainly(super().get_params(ctx))


class PlainCommand(TyperCommand):
    """A command whose parameters read plain values."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _read_plainly(super().get_params(ctx))
