"""Write docs/cli.md from the commands' own ``--help`` (``python -m costline.cli.docgen > docs/cli.md``).

A test regenerates it and compares, so the reference never drifts from the code.
"""

from __future__ import annotations

import click

from costline.cli import cli

HEADER = """# CLI reference

Generated from `--help` by `python -m costline.cli.docgen > docs/cli.md`; a test keeps it current.
Every command prints `error: <message>` on one line and exits non-zero on bad input (2 for usage errors,
1 for everything else, including `prices explain`, `cost` and `estimate` when no price matches the model:
`cost` and `estimate` still print the unpriced breakdown, and name the closest catalog names on stderr).

Every command that prints data takes `--format table|json|csv`; `--json` is `--format json` (`prices import`,
whose `--format` names the file's format, prints with `--output-format`). `table` is for reading, `json` is
one document with money as exact decimal strings, `csv` is the rows with exact values (a header row, NULL as an
empty field, lists and objects as JSON text; a single object is one row). When standard output is not a
terminal, tables are as wide as their values: nothing is cut or folded at 80 columns.

While `costline serve` runs for the store (its `server.json` in the data directory), the commands that read or
change the store (`report`, `top`, `export`, `projects`, `reprice`, `purge`, `budgets`, `alerts`,
`channels`, `apply`) go through the server with its local admin token (docs/api.md), so they work beside it
and give what they give on the store itself.
"""


def _walk(command: click.Command, name: str, parent: click.Context | None) -> list[tuple[click.Context, click.Command]]:
    ctx = command.make_context(name, [], parent=parent, resilient_parsing=True) if parent else click.Context(
        command, info_name=name, terminal_width=100, max_content_width=100,
        help_option_names=["-h", "--help"],
    )
    found = [(ctx, command)]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            found.extend(_walk(command.get_command(ctx, sub), sub, ctx))  # type: ignore[arg-type]
    return found


def render() -> str:
    parts = [HEADER]
    for ctx, command in _walk(cli, "costline", None):
        parts.append(f"\n## `{ctx.command_path}`\n\n```text\n{command.get_help(ctx)}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
