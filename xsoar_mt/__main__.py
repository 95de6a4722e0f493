"""Entry point for `python -m xsoar_mt`."""

from xsoar_mt.cli import main

main()
