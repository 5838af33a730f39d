"""``costline estimate``: token count and cost of a prompt before the call."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click

from costline.api import estimate
from costline.cli.context import CliContext, parse_when, pass_cli
from costline.cli.output import emit_csv_rows, format_options
from costline.cli.render import console, emit_breakdown, exit_if_unknown, print_breakdown
from costline.core.choose import cheapest_models
from costline.core.money import decimal_str, to_decimal
from costline.core.usage import Usage
from costline.errors import CostlineError

MAX_PROMPT_BYTES = 64 * 1024 * 1024


@click.command("estimate")
@click.option("--model", required=True, help="Model to price the prompt with.")
@click.option("--provider", help="Provider of the model (default: inferred from the name).")
@click.option("--prompt", help="Prompt text.")
@click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
              help="File holding the prompt ('-' for standard input).")
@click.option("--max-output-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Output tokens to budget for (the most the call may produce).")
@click.option("--at", "at_text", metavar="ISO8601", help="Price as of this time (default: now).")
@click.option("--cheapest", "cheapest", type=click.IntRange(min=1), metavar="N",
              help="Also list the N cheapest models that fit (see --max-cost, --min-context, --allow-provider).")
@click.option("--max-cost", help="With --cheapest: only models whose estimated cost is at most this.")
@click.option("--min-context", type=click.IntRange(min=1), help="With --cheapest: minimum context window.")
@click.option("--allow-provider", "allowed", multiple=True, help="With --cheapest: providers to consider.")
@format_options
@pass_cli
def estimate_command(
    obj: CliContext,
    model: str,
    provider: str | None,
    prompt: str | None,
    prompt_file: Path | None,
    max_output_tokens: int,
    at_text: str | None,
    cheapest: int | None,
    max_cost: str | None,
    min_context: int | None,
    allowed: tuple[str, ...],
    fmt: str,
) -> None:
    """Count a prompt's tokens and price it before calling the model.

    Counts are exact for OpenAI encodings (o200k_base, cl100k_base, shipped with costline); for other
    models they are labelled estimates. A model without a price prints the closest catalog names on stderr and
    exits with status 1. csv: one row for the model, then one per --cheapest choice.
    """
    if (prompt is None) == (prompt_file is None):
        raise click.UsageError("give exactly one of --prompt and --prompt-file")
    if prompt_file is not None:
        if str(prompt_file) == "-":
            text = sys.stdin.read(MAX_PROMPT_BYTES + 1)
        else:
            if prompt_file.stat().st_size > MAX_PROMPT_BYTES:
                raise CostlineError(f"{prompt_file}: larger than {MAX_PROMPT_BYTES} bytes")
            try:
                text = prompt_file.read_text("utf-8")
            except UnicodeDecodeError:
                raise CostlineError(f"{prompt_file}: not UTF-8 text") from None
    else:
        assert prompt is not None
        text = prompt
    if cheapest is None and (max_cost or min_context or allowed):
        raise click.UsageError("--max-cost, --min-context and --allow-provider need --cheapest N")
    at = parse_when(at_text)
    book = obj.book
    result = estimate(model, text, max_output_tokens=max_output_tokens, provider=provider, at=at, book=book)
    counted, breakdown = result.prompt, result.cost
    record = book.resolve(model, book.normalize_provider(provider), at=at)
    choices = []
    if cheapest is not None:
        limit: Decimal | None = to_decimal(max_cost, field="--max-cost") if max_cost else None
        choices = cheapest_models(
            book, input_tokens=counted.tokens, output_tokens=max_output_tokens, at=at,
            min_context_window=min_context, max_cost=limit, providers=allowed or None, limit=cheapest,
        )
    usage = Usage.of(input_tokens=counted.tokens, output_tokens=max_output_tokens)
    if fmt == "json":
        extra: dict[str, object] = {"input_tokens": counted.tokens, "output_tokens": max_output_tokens,
                                    "exact": counted.exact, "encoding": counted.encoding,
                                    "count_method": counted.method}
        if cheapest is not None:
            extra["cheapest"] = [
                {"model": c.record.model, "provider": c.record.provider, "price_id": c.record.id,
                 "total": decimal_str(c.cost.total or 0), "context_window": c.record.context_window}
                for c in choices
            ]
        emit_breakdown(fmt, breakdown, requested_model=model, usage=usage, record=record, extra=extra)
    elif fmt == "csv":
        unpriced = breakdown.status.value == "unpriced"
        rows = [{"choice": "requested", "model": model, "provider": breakdown.provider,
                 "input_tokens": counted.tokens, "output_tokens": max_output_tokens, "exact": counted.exact,
                 "total": None if unpriced else breakdown.total, "currency": breakdown.currency,
                 "status": breakdown.status.value, "price_id": breakdown.price_id, "context_window": None}]
        rows += [{"choice": "cheapest", "model": c.record.model, "provider": c.record.provider,
                  "input_tokens": counted.tokens, "output_tokens": max_output_tokens, "exact": None,
                  "total": c.cost.total, "currency": c.cost.currency, "status": c.cost.status.value,
                  "price_id": c.record.id, "context_window": c.record.context_window} for c in choices]
        emit_csv_rows(list(rows[0]), rows)
    else:
        out = console()
        out.print(f"prompt: {counted.tokens:,} tokens ({counted.method}); output budget: {max_output_tokens:,} "
                  "tokens")
        print_breakdown(breakdown, requested_model=model)
        if cheapest is not None:
            out.print("\ncheapest models that fit:")
            for c in choices:
                total = decimal_str(c.cost.total or 0)
                out.print(f"  {total:>14} {c.cost.currency}  {c.record.provider}:{c.record.model}")
            if not choices:
                out.print("  (none)")
    exit_if_unknown(book, breakdown, model, book.normalize_provider(provider), at)
