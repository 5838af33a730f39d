"""A compiled copy of the bundled catalog in ``<data dir>/cache/``, so a command starts in a tenth of a second.

Importing ``genai_prices`` (pydantic models, its HTTP updater) and compiling its ~5,000 models takes about a
second; reading back the compiled records takes well under 100 ms. The file holds, beside the records, what
they depend on (its name carries a checksum of it): the Python version and the size and modification time of
``genai_prices/data.py`` and of costline's compiler and record modules, so an upgrade of either, or an edit in
a development checkout, is a miss and compiles again. The file is written whole under a temporary name, then
renamed (readers never see a part), readable by its owner only; any problem reading or writing it falls back
to compiling, silently.

The cache holds pickled records: it is trusted as the other files of the data directory are (whoever can write
there can already change the store and the price files).
"""

from __future__ import annotations

import contextlib
import copyreg
import importlib.util
import io
import logging
import os
import pickle
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
#: costline modules whose code shapes the cached records
_COSTLINE_MODULES = ("catalog/genai.py", "catalog/cache.py", "core/price.py", "core/resolve.py", "core/units.py")


def _proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


def _stamp(path: Path) -> str:
    info = path.stat()
    return f"{path.name}:{info.st_size}:{info.st_mtime_ns}"


def catalog_key() -> str | None:
    """What the cached records depend on, or None when genai-prices cannot be found (then nothing is cached)."""
    spec = importlib.util.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    here = Path(__file__).resolve().parent.parent
    try:
        parts = [f"{sys.version_info[0]}.{sys.version_info[1]}", _stamp(Path(spec.origin).parent / "data.py"),
                 *(_stamp(here / name) for name in _COSTLINE_MODULES)]
    except OSError:
        return None
    return "\n".join(parts)


def cached(cache_dir: Path | None, name: str, build: Callable[[], T]) -> T:
    """``build()``'s value, read from ``cache_dir`` when a copy for the current code and data is there."""
    key = catalog_key() if cache_dir is not None else None
    if cache_dir is None or key is None:
        return build()
    # the name carries a checksum of the key (hashlib would load OpenSSL: 25 ms); the file holds the key itself
    path = cache_dir / f"{name}-{zlib.crc32(key.encode()):08x}.pickle"
    try:
        with path.open("rb") as f:
            stored_key, value = pickle.load(f)
        if stored_key == key:
            return value  # type: ignore[no-any-return]
    except FileNotFoundError:
        pass
    except Exception as exc:  # a damaged or foreign file: compile instead
        log.debug("ignoring the catalog cache %s: %s", path, exc)
    value = build()
    _write(path, name, (key, value))
    return value


def _write(path: Path, name: str, value: Any) -> None:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[MappingProxyType] = lambda m: (_proxy, (dict(m),))
    try:
        pickler.dump(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getvalue())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except Exception as exc:  # a read-only or full disk: the next start compiles again
        log.debug("cannot write the catalog cache %s: %s", path, exc)
        return
    for old in path.parent.glob(f"{name}-*.pickle"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()
