"""Settings: one declarative table. Only the CLI and the server read it; the library takes arguments.

Each setting has a name, an environment variable, a default, a type and a line of documentation; a test
checks that every one is documented in docs/settings.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from costline.errors import CostlineError


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "costline"


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in text.split(os.pathsep) if p.strip())


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise CostlineError(f"expected true or false, got {text!r}")


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    doc: str


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "data_dir", "COSTLINE_DATA_DIR", lambda s: Path(s).expanduser(), _default_data_dir,
        "Directory for costline's data: imported price files (prices/imported/), user price files "
        "(prices/user/) and, once the server exists, the embedded store. Default: $XDG_DATA_HOME/costline "
        "or ~/.local/share/costline.",
    ),
    Setting(
        "price_files", "COSTLINE_PRICE_FILES", _paths, tuple,
        "Extra user price files (YAML or JSON), separated by the OS path separator (':' on Linux). They are "
        "read after the files in <data_dir>/prices/user/ and take precedence over imported and bundled prices.",
    ),
    Setting(
        "bundled_prices", "COSTLINE_BUNDLED_PRICES", _bool, lambda: True,
        "Whether the bundled genai-prices catalog is loaded (true/false). Turn it off to price only with your "
        "own and imported files.",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    price_files: tuple[Path, ...] = ()
    bundled_prices: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env)
            if raw is None:
                values[setting.name] = setting.default()
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except CostlineError as exc:
                raise CostlineError(f"{setting.env}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def imported_prices_dir(self) -> Path:
        return self.data_dir / "prices" / "imported"

    @property
    def user_prices_dir(self) -> Path:
        return self.data_dir / "prices" / "user"
