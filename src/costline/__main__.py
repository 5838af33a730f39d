"""``python -m costline`` runs the command line."""

from costline.cli import main

main()
