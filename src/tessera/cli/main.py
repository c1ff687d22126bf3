"""The ``tessera`` application: sub-commands, and the rule that a failure is one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from tessera.cli import (
    access,
    agents,
    approvals,
    audit,
    issuers,
    keys,
    kill,
    people,
    playbook,
    policy,
    resources,
    serve,
    simulate,
    tasks,
    tokens,
)
from tessera.cli.client import CliError
from tessera.cli.output import error


class TesseraGroup(TyperGroup):
    """Turns every failure into ``error: …`` on one line and a non-zero exit, never a traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except CliError as exc:
            error(exc.message)
            result = exc.exit_code
        except typer.Abort:
            error("aborted")
            result = 1
        except Exception as exc:  # the contract: one line, no traceback
            result = report(exc)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def report(exc: Exception) -> int:
    """Print a usage error (Click's, as Typer raises them) or an unexpected exception as one line."""
    exit_code = getattr(exc, "exit_code", None)
    format_message = getattr(exc, "format_message", None)
    if not isinstance(exit_code, int) or not callable(format_message):
        error(f"unexpected {type(exc).__name__}: {exc or 'no details'}")
        return 1
    if type(exc).__name__ == "NoArgsIsHelpError":
        return exit_code  # the help has been printed already, as Typer does
    message = str(format_message())
    context = getattr(exc, "ctx", None)
    command_path = getattr(context, "command_path", None)
    if exit_code == 2 and command_path:
        message += f" (see '{command_path} --help')"
    error(message)
    return exit_code


app = typer.Typer(
    cls=TesseraGroup,
    name="tessera",
    help="Tessera: identities, ephemeral credentials and audit for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(agents.app, name="agent")
app.add_typer(tokens.app, name="token")
app.add_typer(keys.app, name="keys")
app.add_typer(policy.app, name="policy")
app.add_typer(resources.app, name="resource")
app.add_typer(audit.app, name="audit")
app.add_typer(issuers.app, name="issuer")
app.add_typer(tasks.app, name="task")
app.add_typer(people.app, name="user")
app.command("login")(people.login)
app.command("logout")(people.logout)
app.command("whoami")(people.whoami)
app.add_typer(approvals.app, name="approvals")
app.add_typer(access.app, name="access")
app.add_typer(kill.app, name="kill")
app.add_typer(playbook.app, name="playbook")
app.add_typer(playbook.receivers, name="receiver")
app.command("simulate")(simulate.simulate)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
