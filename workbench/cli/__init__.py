"""The command line: one thin module per command group (parse, call, print); errors become one line here."""
from workbench.cli.group import cli, main

__all__ = ["cli", "main"]
