"""Write docs/cli.md from the commands' own ``--help`` (``python -m costline.cli.docgen > docs/cli.md``).

A test regenerates it and compares, so the reference never drifts from the code.
"""

from __future__ import annotations

import click

from costline.cli import cli

HEADER = """# CLI reference

Generated from `--help` by `python -m costline.cli.docgen > docs/cli.md`; a test keeps it current.
Every command prints `error: <message>` on one line and exits non-zero on bad input (2 for usage errors,
1 for everything else, including `prices explain` when no price matches).
"""


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found.extend(_walk(command.commands[name], [*path, name]))
    return found


def render() -> str:
    parts = [HEADER]
    for path, command in _walk(cli, ["costline"]):
        ctx = click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100)
        parts.append(f"\n## `{' '.join(path)}`\n\n```text\n{command.get_help(ctx)}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
