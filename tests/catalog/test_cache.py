"""The compiled catalog cache (catalog/cache.py): the records read back are the records compiled; a damaged
file or one written for other code is not used (it is compiled again and replaced)."""

from __future__ import annotations

import pickle
from pathlib import Path

from costline.catalog.cache import cached, catalog_key
from costline.catalog.genai import _compile_catalog


def test_cached_records_are_the_compiled_ones(tmp_path: Path) -> None:
    compiled = _compile_catalog()
    first = cached(tmp_path, "genai-catalog", _compile_catalog)
    files = list(tmp_path.glob("genai-catalog-*.pickle"))
    assert len(files) == 1 and (files[0].stat().st_mode & 0o777) == 0o600
    read_back = cached(tmp_path, "genai-catalog", lambda: (_ for _ in ()).throw(AssertionError("compiled again")))
    assert first == compiled and read_back == compiled
    assert read_back[0][0].rates == compiled[0][0].rates  # the rates mapping survives (a read-only proxy)
    assert type(read_back[0][0].rates).__name__ == "mappingproxy"


def test_a_damaged_or_foreign_file_is_compiled_again(tmp_path: Path) -> None:
    cached(tmp_path, "genai-catalog", lambda: ("first",))
    (path,) = tmp_path.glob("genai-catalog-*.pickle")
    path.write_bytes(b"not a pickle")
    assert cached(tmp_path, "genai-catalog", lambda: ("second",)) == ("second",)
    path.write_bytes(pickle.dumps(("code of another version", ("stale",))))
    assert cached(tmp_path, "genai-catalog", lambda: ("third",)) == ("third",)
    assert pickle.loads(path.read_bytes()) == (catalog_key(), ("third",))


def test_no_cache_directory_compiles(tmp_path: Path) -> None:
    assert cached(None, "genai-catalog", lambda: ("built",)) == ("built",)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    assert cached(blocked / "cache", "genai-catalog", lambda: ("built",)) == ("built",)  # cannot write: fine
