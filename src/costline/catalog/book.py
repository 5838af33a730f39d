"""Assemble the price book: user files > imported files > the bundled genai-prices catalog."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from costline.catalog.genai import load_genai_catalog
from costline.catalog.imported import ImportResult, read_price_json
from costline.core.price import PriceRecord, Source
from costline.core.resolve import PriceBook, ProviderInfo
from costline.errors import PriceDataError
from costline.settings import Settings

log = logging.getLogger(__name__)

ImportFormat = Literal["litellm", "langfuse", "costline"]
IMPORT_FORMATS: tuple[ImportFormat, ...] = ("litellm", "langfuse", "costline")
_USER_SUFFIXES = (".yaml", ".yml", ".json")


def import_price_file(path: Path, fmt: ImportFormat) -> ImportResult:
    """Read and validate ``path`` in ``fmt`` without storing it."""
    if fmt == "costline":
        from costline.catalog.user_file import load_price_file

        records = load_price_file(path, source=Source.USER)
        return ImportResult(format=fmt, source_name=path.name, records=records, skipped=(), warnings=())
    data = read_price_json(path)
    if fmt == "litellm":
        from costline.catalog.litellm import import_litellm

        if not isinstance(data, dict):
            raise PriceDataError(f"{path}: a LiteLLM price file is a JSON object keyed by model name")
        return import_litellm(data, source_name=path.name)
    if fmt == "langfuse":
        from costline.catalog.langfuse import import_langfuse

        if not isinstance(data, list):
            raise PriceDataError(f"{path}: a Langfuse price file is a JSON array of models")
        return import_langfuse(data, source_name=path.name)
    raise PriceDataError(f"unknown price file format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}")


def store_price_file(path: Path, fmt: ImportFormat, settings: Settings) -> Path:
    """Copy a validated file into the data directory so later runs price with it."""
    if fmt == "costline":
        target_dir = settings.user_prices_dir
        target = target_dir / path.name
    else:
        target_dir = settings.imported_prices_dir
        target = target_dir / f"{path.stem}.{fmt}.json"
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def _stored_imports(settings: Settings) -> Iterable[tuple[Path, ImportFormat]]:
    folder = settings.imported_prices_dir
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        fmt = path.stem.rsplit(".", 1)[-1]
        if fmt in ("litellm", "langfuse"):
            yield path, fmt  # type: ignore[misc]
        else:
            log.warning("ignoring %s: its name does not end in .litellm.json or .langfuse.json", path)


def user_price_files(settings: Settings, extra: Iterable[Path] = ()) -> list[Path]:
    """Highest precedence first: files given on the command line, then COSTLINE_PRICE_FILES, then the
    data directory's prices/user/ folder."""
    files = [*extra, *settings.price_files]
    folder = settings.user_prices_dir
    if folder.is_dir():
        files.extend(sorted(p for p in folder.iterdir() if p.suffix.lower() in _USER_SUFFIXES))
    return files


def load_price_book(settings: Settings | None = None, *, extra_files: Iterable[Path] = ()) -> PriceBook:
    settings = settings or Settings.from_env()
    records: list[PriceRecord] = []
    for path in user_price_files(settings, extra_files):
        from costline.catalog.user_file import load_price_file

        records.extend(load_price_file(path, source=Source.USER))
    for path, fmt in _stored_imports(settings):
        records.extend(import_price_file(path, fmt).records)
    providers: tuple[ProviderInfo, ...] = ()
    if settings.bundled_prices:
        bundled, providers = load_genai_catalog(settings.data_dir / "cache")
        records.extend(bundled)
    return PriceBook(records, providers)
