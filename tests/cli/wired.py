"""A CliRunner that hands the CLI a shell factory in place of SSH: the root context's `obj`, which
`xsoar_mt.cli.checks.session` passes to the command's Session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from typer.testing import CliRunner

from xsoar_mt.remote import RemoteShell


class WiredRunner(CliRunner):
    def __init__(self, shells: Callable[[str], RemoteShell] | None = None) -> None:
        super().__init__()
        self.shells = shells

    def invoke(self, app: Any, args: str | Sequence[str] | None = None, **kwargs: Any) -> Any:  # type: ignore[override]  # one more keyword
        return super().invoke(app, args, obj=self.shells, **kwargs)
