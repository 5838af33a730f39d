"""The ``costline`` command: a thin shell over the library. Errors print one line and exit non-zero."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from costline.cli.context import CliContext
from costline.errors import CostlineError


class _Group(click.Group):
    """A group whose usage errors are one line (``error: ...``) instead of click's three."""

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


def _register() -> None:
    from costline.cli.control import alerts_group, apply_command, budgets_group, channels_group
    from costline.cli.cost import cost_command
    from costline.cli.estimate import estimate_command
    from costline.cli.keys import keys_group
    from costline.cli.maintenance import purge_command, reprice_command
    from costline.cli.prices import prices_group
    from costline.cli.replay import replay_command
    from costline.cli.report import export_command, report_command, top_command
    from costline.cli.serve import projects_group, serve_command

    cli.add_command(prices_group)
    cli.add_command(serve_command)
    cli.add_command(projects_group)
    cli.add_command(keys_group)
    cli.add_command(reprice_command)
    cli.add_command(purge_command)
    cli.add_command(cost_command)
    cli.add_command(estimate_command)
    cli.add_command(report_command)
    cli.add_command(top_command)
    cli.add_command(export_command)
    cli.add_command(budgets_group)
    cli.add_command(alerts_group)
    cli.add_command(channels_group)
    cli.add_command(apply_command)
    cli.add_command(replay_command)


_register()


def main() -> None:
    cli.main(prog_name="costline")
