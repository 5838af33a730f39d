"""State shared by the CLI commands: settings and the lazily loaded price book."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the catalog and settings load when a command asks for them, not at start-up
    from costline.core.resolve import PriceBook
    from costline.settings import Settings


@dataclass
class CliContext:
    data_dir: Path | None = None
    price_files: tuple[Path, ...] = ()
    _book: PriceBook | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        from costline.settings import Settings

        return Settings.from_env(data_dir=self.data_dir)

    @property
    def book(self) -> PriceBook:
        if self._book is None:
            from costline.catalog.book import load_price_book

            self._book = load_price_book(self.settings, extra_files=self.price_files)
        return self._book


def parse_when(text: str | None, option: str = "--at") -> datetime:
    """An ISO 8601 date or date-time (naive means UTC); None means now."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not an ISO 8601 date or date-time", param_hint=option) from None
        value = datetime(day.year, day.month, day.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


pass_cli = click.make_pass_decorator(CliContext)
