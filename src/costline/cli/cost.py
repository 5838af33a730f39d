"""``costline cost``: price one call from a raw provider response or from token counts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click

from costline.cli.context import CliContext, parse_when, pass_cli
from costline.cli.output import format_options
from costline.cli.render import emit_breakdown, exit_if_unknown
from costline.core.cost import calc_cost
from costline.core.usage import Usage
from costline.errors import CostlineError, ExtractionError

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def _read_text(stream: Any, name: str) -> str:
    data = stream.read(MAX_RESPONSE_BYTES + 1)
    if isinstance(data, bytes):
        if len(data) > MAX_RESPONSE_BYTES:
            raise CostlineError(f"{name}: response is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CostlineError(f"{name}: not UTF-8 text") from None
    return str(data)


def parse_response(text: str, name: str) -> dict[str, Any] | list[dict[str, Any]]:
    """A JSON body, a JSON array of stream chunks, JSON Lines, or server-sent events (``data: {...}``)."""
    stripped = text.strip()
    if not stripped:
        raise CostlineError(f"{name}: empty input")
    try:
        parsed = json.loads(stripped, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        chunks = _parse_lines(stripped)
        if chunks is None:
            raise CostlineError(f"{name}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        return chunks
    if isinstance(parsed, dict):
        return parsed
    if isinstance(parsed, list) and all(isinstance(c, dict) for c in parsed):
        return parsed
    raise CostlineError(f"{name}: expected a JSON object (a response) or an array of stream chunks")


def _parse_lines(text: str) -> list[dict[str, Any]] | None:
    chunks: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("event:", "id:", ":")):
            continue
        if line.startswith("data:"):
            line = line[5:].strip()
            if line == "[DONE]":
                continue
        try:
            item = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError:
            return None
        if not isinstance(item, dict):
            return None
        chunks.append(item)
    return chunks or None


def _parse_attributes(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--attribute")
        out[key.strip()] = value.strip()
    return out


@click.command("cost")
@click.option("--provider", help="Provider of the response (openai, anthropic, google, aws, cohere, mistral, "
              "langchain, langfuse) or of the model.")
@click.option("--response", "response", type=click.File("rb"),
              help="Raw provider response body (JSON, stream chunks as a JSON array, JSON Lines or SSE); "
              "'-' reads standard input.")
@click.option("--model", help="Model name (default: the one in the response).")
@click.option("--input-tokens", type=click.IntRange(min=0), help="All input tokens, cached ones included.")
@click.option("--output-tokens", type=click.IntRange(min=0), help="All output tokens, reasoning included.")
@click.option("--cached-tokens", type=click.IntRange(min=0), help="Input tokens read from the cache.")
@click.option("--cache-write-tokens", type=click.IntRange(min=0), help="Input tokens written to the cache.")
@click.option("--reasoning-tokens", type=click.IntRange(min=0), help="Output tokens spent on reasoning.")
@click.option("--at", "at_text", metavar="ISO8601", help="Price as of this time (default: now).")
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE",
              help="Request attribute that selects a price variant, e.g. service_tier=flex or processing=batch.")
@format_options
@pass_cli
def cost_command(
    obj: CliContext,
    provider: str | None,
    response: Any,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    cache_write_tokens: int | None,
    reasoning_tokens: int | None,
    at_text: str | None,
    attributes: tuple[str, ...],
    fmt: str,
) -> None:
    """Price one model call, from a raw provider response or from token counts.

    A model without a price is `unpriced` (never $0): the command prints the closest catalog names on stderr
    and exits with status 1. csv: one row per cost component and a total row.

    \b
    costline cost --provider openai --response response.json
    costline cost --model gpt-4o --input-tokens 1200 --cached-tokens 1000 --output-tokens 300 --json
    """
    counts = {
        "--input-tokens": input_tokens, "--output-tokens": output_tokens, "--cached-tokens": cached_tokens,
        "--cache-write-tokens": cache_write_tokens, "--reasoning-tokens": reasoning_tokens,
    }
    given = [name for name, value in counts.items() if value is not None]
    at = parse_when(at_text)
    attrs = _parse_attributes(attributes)
    provided = None
    if response is not None:
        from costline.extract import Extracted, extract_stream_usage, extract_usage

        if given:
            raise click.UsageError(f"--response cannot be combined with {', '.join(given)}")
        if not provider:
            raise click.UsageError("--response needs --provider (the format of the response)")
        name = getattr(response, "name", "-")
        body = parse_response(_read_text(response, name), name)
        extracted: Extracted = (
            extract_stream_usage(body, provider) if isinstance(body, list) else extract_usage(body, provider)
        )
        usage = extracted.usage
        model = model or extracted.model
        provider = extracted.provider or provider
        provided = extracted.provided_cost
        if not model:
            raise ExtractionError(f"{name}: the response names no model; pass --model")
    else:
        if not model:
            raise click.UsageError("give --response FILE with --provider, or --model with token counts")
        if input_tokens is None and output_tokens is None:
            raise click.UsageError("give --input-tokens and/or --output-tokens")
        quantities = {
            "input_tokens": input_tokens or 0,
            "output_tokens": output_tokens or 0,
            "cache_read_tokens": cached_tokens or 0,
            "cache_write_tokens": cache_write_tokens or 0,
            "output_reasoning_tokens": reasoning_tokens or 0,
        }
        usage = Usage(quantities)
    book = obj.book
    provider_id = book.normalize_provider(provider)
    record = book.resolve(model, provider_id, at=at)
    breakdown = calc_cost(
        usage, record, at=at, attributes=attrs, provided=provided,
        model=None if record else model, provider=None if record else provider_id,
    )
    emit_breakdown(fmt, breakdown, requested_model=model, usage=usage, record=record)
    exit_if_unknown(book, breakdown, model, provider_id, at)
