"""Docs stay true: every setting is documented, and the CLI reference matches --help."""

from pathlib import Path

from costline.cli.docgen import render
from costline.settings import SETTINGS

DOCS = Path(__file__).parents[1] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text("utf-8")
    for setting in SETTINGS:
        assert f"`{setting.env}`" in text, setting.env
        assert f"`{setting.name}`" in text, setting.name


def test_cli_reference_is_current() -> None:
    expected = render()
    actual = (DOCS / "cli.md").read_text("utf-8")
    assert actual == expected, "docs/cli.md is stale: run `python -m costline.cli.docgen > docs/cli.md`"
