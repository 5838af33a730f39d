"""The ``costline`` command: a thin shell over the library. Errors print one line and exit non-zero."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from costline.cli.context import CliContext
from costline.errors import CostlineError


class _Group(click.Group):
    """A group whose usage errors are one line (``error: ...``) instead of click's three, and whose commands
    (``COMMANDS``) are imported only when one of them runs (the lazy-group pattern of click's docs), so that
    ``costline --help`` and ``costline cost`` do not load the server, the store drivers or the tokenizer."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list as click writes it, from ``COMMANDS``' help texts, without importing the commands."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:
                # shortened as click shortens a command's own help
                rows.append((name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **kw: Any
    ) -> Any:
        try:
            return super().main(args=args, prog_name=prog_name, standalone_mode=False, **kw)
        except click.exceptions.NoArgsIsHelpError as exc:  # pragma: no cover - click >= 8.2
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except CostlineError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="COSTLINE_DATA_DIR",
              help="Data directory (default: $XDG_DATA_HOME/costline or ~/.local/share/costline).")
@click.option("--prices", "price_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A user price file (YAML/JSON) that takes precedence over every catalog. Repeatable.")
@click.version_option(package_name="costline")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, price_files: tuple[Path, ...]) -> None:
    """costline: what your LLM application costs, exactly."""
    ctx.obj = CliContext(data_dir=data_dir, price_files=price_files)


#: every command: name → (module, attribute, the first paragraph of its help), so that `costline --help` lists
#: them without importing them; tests/cli/test_startup.py checks each text against the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "alerts": ("costline.cli.control", "alerts_group",
               "Create, list, delete and test alert rules; the delivery history (docs/alerts.md)."),
    "apply": ("costline.cli.control", "apply_command",
              "Apply a control file: channels, budgets, tiers and alert rules (docs/budgets.md)."),
    "budgets": ("costline.cli.control", "budgets_group", "Create, list, show and delete budgets (docs/budgets.md)."),
    "cloud": ("costline.cli.cloud", "cloud_group",
              "Cloud billing: import FOCUS/CUR files, report cloud spend, check Cost Explorer filters."),
    "channels": ("costline.cli.control", "channels_group",
                 "List and delete notification channels (define them in the control file or PUT /v1/channels)."),
    "cost": ("costline.cli.cost", "cost_command",
             "Price one model call, from a raw provider response or from token counts."),
    "estimate": ("costline.cli.estimate", "estimate_command",
                 "Count a prompt's tokens and price it before calling the model."),
    "export": ("costline.cli.report", "export_command",
               "Write the observations of a time range, with their trace attributes, to a file."),
    "keys": ("costline.cli.keys", "keys_group", "List, create, revoke and rotate API keys."),
    "prices": ("costline.cli.prices", "prices_group", "Inspect and manage the price catalog."),
    "projects": ("costline.cli.serve", "projects_group", "Create and list projects and their keys."),
    "purge": ("costline.cli.maintenance", "purge_command",
              "Delete observations, scores and empty traces older than the retention period."),
    "replay": ("costline.cli.replay", "replay_command",
               "Send every event of SPILL_FILE again, once; the file keeps only what still fails, with the new "
               "reason."),
    "report": ("costline.cli.report", "report_command", "Cost and usage over a time range, grouped and filtered."),
    "reprice": ("costline.cli.maintenance", "reprice_command",
                "Recompute stored costs with today's price book and record an audit entry."),
    "serve": ("costline.cli.serve", "serve_command",
              "Run the costline server: ingestion (native, OTLP, Langfuse-compatible) on one port."),
    "top": ("costline.cli.report", "top_command",
            "The most expensive traces, users or models over a time range (default: the last 7 days)."),
}


def main() -> None:
    cli.main(prog_name="costline")
