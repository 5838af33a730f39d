"""``costline replay FILE``: send a tracker's spill file again (docs/sdk.md, "Delivery")."""

from __future__ import annotations

from pathlib import Path

import click

from costline.cli.render import console, emit_json


@click.command("replay")
@click.argument("spill_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", help="costline server URL (default: COSTLINE_HOST).")
@click.option("--public-key", help="Project public key (default: COSTLINE_PUBLIC_KEY).")
@click.option("--secret-key", help="Project secret key (default: COSTLINE_SECRET_KEY).")
@click.option("--store", "store_url", metavar="URL",
              help="Ingest into this store in-process instead of a server (default: COSTLINE_STORE_URL).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Events per request.")
@click.option("--json", "as_json", is_flag=True, help="Print {sent, rejected, failed, kept}.")
def replay_command(spill_file: Path, host: str | None, public_key: str | None, secret_key: str | None,
                   store_url: str | None, batch_size: int, as_json: bool) -> None:
    """Send every event of SPILL_FILE again, once; the file keeps only what still fails, with the new reason."""
    from costline.sdk.config import resolve_config
    from costline.sdk.replay import replay
    from costline.sdk.sinks import EmbeddedTransport, HttpTransport, Transport

    config = resolve_config(host=host, public_key=public_key, secret_key=secret_key, store_url=store_url,
                            max_retries=0)
    transport: Transport
    if config.mode == "http":
        transport = HttpTransport(config)
    elif config.mode == "embedded":
        transport = EmbeddedTransport(config)
    else:
        raise click.UsageError("name a server with --host (or COSTLINE_HOST) or a store with --store")
    try:
        done = replay(spill_file, transport, batch_size=batch_size)
    finally:
        transport.close()
    if as_json:
        emit_json(done.to_json())
    else:
        console().print(f"sent {done.sent}, rejected {done.rejected}, failed {done.failed}; "
                        f"{done.kept} left in {spill_file}")
    if done.kept:
        raise SystemExit(1)
