"""Import billing files (FOCUS or CUR) into the ledger, idempotently.

All files of one import are read and checked first; any bad row stops the import before anything is written
(errors name the file, line and column). The lines are grouped by (provider, billing account, billing period);
each group replaces what an earlier import stored for it, in one transaction, so importing a period again
never doubles it. Pass every file of a billing period in one import (CUR splits a period over several files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from costline.cloud.currency import TARGET, CurrencyError, Rate, Rates
from costline.cloud.files import BillingFileError, open_rows
from costline.cloud.ledger import group_id, to_observation
from costline.cloud.lines import CloudLine, LineError, cur_columns, cur_line, focus_line
from costline.core.events import Observation
from costline.errors import CostlineError

MAX_ERRORS: Final = 20
#: the most lines one import holds in memory (about 1 KiB each)
MAX_LINES: Final = 5_000_000

Progress = Callable[[str, int], None]


class BillingImportError(CostlineError):
    """Rows that cannot be imported; ``errors`` lists each with its file, line and column."""

    def __init__(self, errors: Sequence[str], more: int = 0) -> None:
        self.errors = list(errors)
        tail = f"\n... and {more} more" if more else ""
        super().__init__(f"{len(errors) + more} row(s) cannot be imported, nothing was written:\n" +
                         "\n".join(self.errors) + tail)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    provider: str
    billing_account_id: str
    billing_period_start: str
    lines: int
    billed_cost: Decimal  # USD


@dataclass(slots=True)
class ImportSummary:
    files: list[str] = field(default_factory=list)
    format: str = ""
    lines: int = 0
    replaced: int = 0
    converted: int = 0
    groups: list[GroupSummary] = field(default_factory=list)

    @property
    def billed_cost(self) -> Decimal:
        return sum((g.billed_cost for g in self.groups), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files, "format": self.format, "lines": self.lines, "replaced": self.replaced,
            "converted_lines": self.converted, "billed_cost": format(self.billed_cost, "f"), "currency": TARGET,
            "billing_periods": [
                {"provider": g.provider, "billing_account_id": g.billing_account_id,
                 "billing_period_start": g.billing_period_start, "lines": g.lines,
                 "billed_cost": format(g.billed_cost, "f")} for g in self.groups
            ],
        }


def detect_format(header: Sequence[str]) -> str | None:
    names = set(header)
    if "BilledCost" in names:
        return "focus"
    if "lineItem/UnblendedCost" in names or "line_item_unblended_cost" in names:
        return "cur"
    return None


def read_lines(paths: Sequence[Path], fmt: str | None = None,
               progress: Progress | None = None) -> tuple[str, list[tuple[CloudLine, str]]]:
    """Every line of ``paths`` (all in one format: ``fmt``, or detected from the first header)."""
    found: list[tuple[CloudLine, str]] = []
    errors: list[str] = []
    more = 0
    chosen = fmt
    for path in paths:
        rows = open_rows(path)
        detected = detect_format(rows.header)
        if chosen is None:
            chosen = detected
        if chosen is None:
            raise BillingFileError(f"{path}: neither FOCUS (BilledCost column) nor CUR "
                                   "(lineItem/UnblendedCost or line_item_unblended_cost column); give --format")
        if detected is not None and detected != chosen:
            raise BillingFileError(f"{path}: looks like {detected.upper()}, not {chosen.upper()}")
        rename = cur_columns(rows.header) if chosen == "cur" else None
        read = focus_line if chosen == "focus" else cur_line
        count = 0
        for line_no, row in rows.rows:
            count += 1
            try:
                found.append((read({rename[k]: v for k, v in row.items()} if rename else row), path.name))
            except LineError as exc:
                if len(errors) < MAX_ERRORS:
                    errors.append(f"{path}:{line_no}: column {exc}")
                else:
                    more += 1
            if len(found) > MAX_LINES:
                raise BillingFileError(f"{path}:{line_no}: more than {MAX_LINES} lines in one import; "
                                       "import billing periods one at a time")
            if progress is not None and count % 1000 == 0:
                progress(path.name, 1000)
        if progress is not None:
            progress(path.name, count % 1000)
    if errors:
        raise BillingImportError(errors, more)
    return chosen or "focus", found


def to_observations(lines: Iterable[tuple[CloudLine, str]], project_id: str,
                    rates: Rates | None = None) -> tuple[list[Observation], ImportSummary]:
    summary = ImportSummary()
    observations: list[Observation] = []
    seqs: dict[str, int] = {}
    totals: dict[str, tuple[CloudLine, int, Decimal]] = {}
    for line, source in lines:
        rate: Rate | None = None
        if line.currency != TARGET:
            rates = rates or Rates()
            try:
                rate = rates.to_usd(line.currency, line.charge_period_start.date())
            except CurrencyError as exc:
                raise BillingImportError([f"{source}: column BillingCurrency: {exc}"]) from None
            summary.converted += 1
        group = group_id(line)
        seq = seqs.get(group, 0)
        seqs[group] = seq + 1
        obs = to_observation(line, project_id, seq, rate, source)
        observations.append(obs)
        first, count, total = totals.get(group, (line, 0, Decimal(0)))
        totals[group] = (first, count + 1, total + (obs.total_cost or Decimal(0)))
    summary.lines = len(observations)
    summary.groups = [
        GroupSummary(first.provider, first.billing_account_id, first.billing_period_start.isoformat(), count, total)
        for first, count, total in sorted(totals.values(), key=lambda t: (t[0].provider, t[0].billing_account_id,
                                                                         t[0].billing_period_start))
    ]
    return observations, summary


def import_billing(store: Any, project_id: str, paths: Sequence[Path], fmt: str | None = None, *,
                   now: datetime, progress: Progress | None = None, rates: Rates | None = None) -> ImportSummary:
    """Read ``paths`` and replace their billing periods in ``store``'s project; return what was imported."""
    chosen, lines = read_lines(paths, fmt, progress)
    observations, summary = to_observations(lines, project_id, rates)
    summary.files = [str(p) for p in paths]
    summary.format = chosen
    groups = sorted({o.trace_id for o in observations})
    summary.replaced = store.replace_groups(project_id, groups, observations)
    store.add_audit("cloud_import", {"project_id": project_id, **summary.as_json()}, now)
    return summary
