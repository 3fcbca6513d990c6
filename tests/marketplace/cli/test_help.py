"""Every ``webi ... --help`` reads as help for a person, not for a type checker (marketplace.cli.help).

The command tree is walked as ``webi`` builds it (the provider and verifier groups come in through
their entry points), so that a command added later is checked without being listed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer import _click
from typer.core import TyperArgument, TyperGroup
from typer.testing import CliRunner

from marketplace.cli.main import app
from marketplace.job_limits import (
    MAX_EXEC_WINDOW_S,
    MAX_INPUT_CHARS,
    MAX_NEW_TOKENS,
    MAX_SAMPLE_TASKS,
    MAX_TASKS,
    MIN_CLAIM_WINDOW_S,
    MIN_EXEC_WINDOW_S,
    TaskType,
)

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
# typer 0.29's labels: <bool>, <str>, <int range>, <list[str]>, <embed|generate|...>.
TYPE_LABEL = re.compile(r"<(?:bool|str|int|float|path|file|dir|list\[[^\]]*\]|[a-z]+ range|[a-z]+(?:\|[a-z]+)+)>")
# A summary in the imperative: "Show ...", never "Shows ..." (a word ending in "ss" may be a verb: "Pass").
THIRD_PERSON = re.compile(r"^[A-Z][a-z]*[^s]s\b")


def _walk(command: _click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], _click.Command]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name in command.list_commands(_click.Context(command)):
            yield from _walk(command.commands[name], (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app)))
SUBCOMMANDS = [path for path in COMMANDS if path]


def _name(path: tuple[str, ...]) -> str:
    return " ".join(("webi", *path))


def _help(path: tuple[str, ...], columns: int = 100) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=ENV | {"COLUMNS": str(columns)}, prog_name="webi")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    return result.output


def _summary(command: _click.Command) -> str:
    """The first paragraph of the command's help, on one line: what its group lists."""
    return " ".join((command.help or "").split("\n\n")[0].split())


def _listed(group_help: str) -> dict[str, str]:
    """The Commands section of a group's help: each command and its row, continuation lines joined."""
    rows: dict[str, list[str]] = {}
    for line in group_help.split("Commands:\n", 1)[1].splitlines():
        if match := re.match(r"^  (\S+)\s+(.*)$", line):
            rows[match.group(1)] = [match.group(2)]
        elif line.startswith("   ") and rows:
            rows[list(rows)[-1]].append(line.strip())
    return {name: " ".join(" ".join(parts).split()) for name, parts in rows.items()}


def test_the_walk_reaches_every_group() -> None:
    groups = {path for path, command in COMMANDS.items() if isinstance(command, TyperGroup)}
    assert {("devnet",), ("store",), ("wallet",), ("job",), ("provider",), ("verifier",)} <= groups
    assert ("job", "post") in COMMANDS and ("verifier", "unstake") in COMMANDS and len(SUBCOMMANDS) > 40


@pytest.mark.parametrize("path", list(COMMANDS), ids=_name)
def test_help_shows_no_type_labels_and_names_arguments_in_capitals(path: tuple[str, ...]) -> None:
    text = _help(path)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: {_name(path)} "), usage
    assert not TYPE_LABEL.search(text), text
    for param in COMMANDS[path].params:
        if isinstance(param, TyperArgument):
            assert param.name is not None
            shown = param.metavar or param.name.upper()
            assert shown == shown.upper() and f" {shown}" in usage, usage
            assert f"{{{param.name}}}" not in text and f"{param.name} <" not in text, text
    # One grammatical person: the help speaks of the command and its options, never to "you" or as "we".
    assert not re.search(r"\b(you|your|we|our)\b", text, re.IGNORECASE), text


@pytest.mark.parametrize("path", SUBCOMMANDS, ids=_name)
def test_summary_is_one_imperative_sentence_listed_whole(path: tuple[str, ...]) -> None:
    summary = _summary(COMMANDS[path])
    assert summary.endswith("."), summary
    assert ". " not in summary, f"one sentence, the detail in a paragraph of its own: {summary!r}"
    assert summary[0].isupper() and not THIRD_PERSON.match(summary), summary
    # The group lists it whole even in an 80-column terminal: click cuts a longer one with "...".
    assert _listed(_help(path[:-1], columns=80))[path[-1]] == summary


def test_square_brackets_print_as_written() -> None:
    assert "[provider] table" in _help(("provider", "run"))
    assert "[verifier] table" in _help(("verifier", "run"))
    assert "$WEBI_HOME/demo/<time>" in _help(("demo",))


def test_flags_show_no_value_and_value_options_a_readable_one() -> None:
    text = _help(("job", "status"))
    assert re.search(r"^\s+--watch\s{2,}Print every event", text, re.MULTILINE), text
    assert re.search(r"^\s+--timeout SECONDS\s", text, re.MULTILINE), text
    assert "Usage: webi job status [OPTIONS] JOB" in text
    assert re.search(r"^Arguments:\n  JOB  The job's number", text, re.MULTILINE), text
    post = _help(("job", "post"))
    for option in ("--price WEBI", "--inputs FILE", "--task TASK", "--claim-window SECONDS", "--wallet NAME"):
        assert option in post, post


def test_job_post_help_gives_every_bound() -> None:
    text = " ".join(_help(("job", "post")).split())
    for bound in (f"1 to {MAX_TASKS:,} inputs", f"at most {MAX_INPUT_CHARS:,} characters each",
                  f"1 to {MAX_SAMPLE_TASKS}", f"1 to {MAX_NEW_TOKENS:,}", f"at least {MIN_CLAIM_WINDOW_S}",
                  f"{MIN_EXEC_WINDOW_S} to {MAX_EXEC_WINDOW_S:,}", ", ".join(task.value for task in TaskType)):
        assert bound in text, bound


def test_readable_names_stay_in_errors_and_validation_still_runs() -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["job", "status"], env=ENV, prog_name="webi")
    assert missing.exit_code == 2 and "Missing argument 'JOB'" in missing.output, missing.output
    too_fast = runner.invoke(app, ["job", "status", "7", "--interval", "0.01"], env=ENV, prog_name="webi")
    assert too_fast.exit_code == 2 and "'--interval'" in too_fast.output, too_fast.output
    too_many = runner.invoke(app, ["devnet", "accounts", "--count", "21"], env=ENV, prog_name="webi")
    assert too_many.exit_code == 2 and "'--count'" in too_many.output, too_many.output
