"""Help text a person can read, for every ``webi`` command group at once.

typer 0.29 writes help for a type checker: a type beside every option and argument
(``--watch <bool>``, ``--until <list[str]>``, ``job_id <int>``), a required argument as
``{job_id}`` in the usage line, and help strings read as Rich markup, so that ``[provider]``
(a TOML table) silently vanishes. Every command group builds its app with
:class:`ReadableTyper` below instead of ``typer.Typer``; its commands then show

- a flag with no type, a value option with its ``metavar=`` (``--price WEBI``) or else a word
  for its type (TEXT, INTEGER, NUMBER, PATH, or its choices), an argument as its name in
  capitals (``JOB_ID``; ``[NAME]`` when optional) with no type;
- help strings as plain text (``rich_markup_mode=None``): brackets, ``<`` and backticks print
  as written, paragraphs are wrapped to the terminal, and a group lists each command with the
  first paragraph of its docstring (one short sentence, or click shortens it with "...").

Bounds stay where typer puts them (``[1<=x<=20]`` after an option with ``min=``/``max=``: the
validation's own numbers) or go in the help in words.

Only typer is imported here: every ``webi`` command loads this module, ``--help`` included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args

import typer
from typer.core import MarkupMode, TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer import _click  # typer's own copy of click: the classes below subclass its Command
    from typer.models import CommandFunctionType

# Help strings are plain text: no Rich markup to eat "[provider]", no Markdown to eat "<time>";
# and only the plain formatter lets an argument's line go without its type.
MARKUP_MODE: MarkupMode = None

_TYPE_WORDS: dict[object, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: "BOOLEAN"}


def _type_word(option: TyperOption) -> str:
    """TEXT, INTEGER, NUMBER, PATH or ``[a|b]`` for an option without a ``metavar=`` of its own."""
    descriptor = option.type_descriptor
    if descriptor.choices is not None:
        return "[" + "|".join(str(getattr(choice, "value", choice)) for choice in descriptor.choices) + "]"
    if descriptor.is_path:
        return "PATH"
    annotation = descriptor.annotation
    if descriptor.is_list and get_args(annotation):
        annotation = get_args(annotation)[0]  # --allow ADDRESS (repeatable), not <list[str]>
    return _TYPE_WORDS.get(annotation, (option.name or "value").upper())


def _argument_name(argument: TyperArgument) -> str:
    """``JOB_ID`` for ``job_id``, unless the declaration chose a ``metavar=`` (``CID[/PATH]``)."""
    return argument.metavar or (argument.name or "value").upper()


def _readable(param: _click.Parameter) -> None:
    """Give ``param`` the metavar its help line shows, unless its declaration chose one."""
    if param.metavar is not None:
        return
    if isinstance(param, TyperArgument):
        param.metavar = _argument_name(param)
    elif isinstance(param, TyperOption):
        param.metavar = "" if param.is_flag or param.count else _type_word(param)


def _usage_pieces(command: _click.Command, ctx: _click.Context) -> list[str]:
    """``[OPTIONS] JOB_ID`` rather than typer's ``[OPTIONS] {job_id}``; ``[NAME]`` when optional."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = _argument_name(param) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


def _format_parameters(command: _click.Command, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
    """The Arguments and Options sections: an argument by its name alone (with its help, when it has one)."""
    params = command.get_params(ctx)
    arguments = [(_argument_name(param), param.help) for param in params
                 if isinstance(param, TyperArgument) and param.help and not param.hidden]
    options = [record for param in params if isinstance(param, TyperOption)
               if (record := param.get_help_record(ctx)) is not None]
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class ReadableCommand(TyperCommand):
    """A command whose parameters read as described in the module docstring."""

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        # Here rather than in __init__: --help is made on first use, and every help, usage and parse
        # path asks for the parameters through this method. Setting a metavar twice is a no-op.
        params = super().get_params(ctx)
        for param in params:
            _readable(param)
        return params

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _format_parameters(self, ctx, formatter)


class ReadableGroup(TyperGroup):
    """A command group read the same way; its own options include --help and the completion ones."""

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _readable(param)
        return params

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)


class ReadableTyper(typer.Typer):
    """``typer.Typer`` whose groups and commands are :class:`ReadableGroup` and :class:`ReadableCommand`.

    A subclass because typer takes the command class per ``command()`` call, with no setting for a
    whole app; ``rich_markup_mode`` is read from the top app and applies to every group under it.
    """

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("cls", ReadableGroup)
        settings.setdefault("rich_markup_mode", MARKUP_MODE)
        super().__init__(**settings)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
                **settings: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or ReadableCommand, **settings)
