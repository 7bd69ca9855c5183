"""``lampo``: the operator CLI. Each installed service adds its own sub-commands through the
``lampo.cli`` entry-point group (a Typer app per service), so the CLI grows as services land.

Start-up stays short however many services are installed: the root lists the command groups by
name without importing them (:class:`LazyGroup`), and loads one only when it is invoked. A
command module imports what its commands need inside them (the database driver, the service's
coordinator), so ``lampo dsar --help`` does not pay for them either.

Every failure an operator can expect (a setting not given, a server not reachable, a refusal, a
bad argument) ends as one line on stderr and a non-zero exit, never a traceback: commands let
such errors rise and :func:`main` words them (:mod:`lampo.cli.errors`), so no command needs a
try/except of its own. ``LAMPO_DEBUG=1`` shows the traceback of an unexpected one.

Adding a command group: a service declares ``[project.entry-points."lampo.cli"] name =
"lampo.<service>.cli:app"`` (a ``typer.Typer``); a group of the platform itself goes into
:data:`BUILTIN`. Give it a one-line help in :data:`SHORT_HELP` (shown by ``lampo --help``
without importing it). Keep the module's top-level imports to typer (and rich): import the rest
inside the commands.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any

import typer
from typer import _click as click  # Typer (0.27) runs on a copy of click of its own: its types, not the click package
from typer.core import TyperCommand, TyperGroup

# Command groups of the platform itself: name -> "module:attribute" (a typer.Typer or click command).
BUILTIN: dict[str, str] = {
    "db": "lampo.db.cli:app",
    "keys": "lampo.cli.keys:app",
}

# What `lampo --help` says of a group without importing it (a group missing here is listed with a
# generic line; its own --help has the full text).
SHORT_HELP: dict[str, str] = {
    "admin": "Staff accounts, roles and the audit log (staff service).",
    "audit": "The staff audit log: verify the chain, publish its head.",
    "billing": "The billing store.",
    "consent": "The consent ledger.",
    "db": "PostgreSQL roles and databases of the services.",
    "dsar": "Data subject requests: submit, follow, approve, extend, retry, packages.",
    "keys": "Master keys and the subject keys they wrap.",
    "recordings": "Call recordings and archived e-mails.",
    "registry": "The customer register.",
    "retention": "Retention: what is due, sweeps, legal holds.",
    "ropa": "The record of processing (GDPR Art. 30), generated from the data map.",
    "seed": "Fill a local suite with synthetic customers.",
    "topics": "Kafka topics of the suite (declared in lampo.messaging.topics).",
}


@cache
def lazy_commands() -> dict[str, str]:
    """Every command group the CLI can load: name -> "module:attribute", nothing imported."""
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group="lampo.cli")}
    return BUILTIN | found


class Unavailable(click.exceptions.ClickException):
    """A command group whose module cannot be imported (one broken service must not take the
    whole CLI down: the others still work)."""


def load(name: str) -> click.Command:
    """Import the command group ``name`` and turn it into a click command named ``name``."""
    import importlib

    module_name, _, attribute = lazy_commands()[name].partition(":")
    try:
        target: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise Unavailable(f"the '{name}' commands are unavailable: {e}") from e
    command = typer.main.get_group(target) if isinstance(target, typer.Typer) else target
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists the command groups by name and loads one only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(lazy_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in lazy_commands():
            return self.commands.get(cmd_name)
        # for the listing of `lampo --help`: a stand-in that imports nothing
        help_text = SHORT_HELP.get(cmd_name, f"The {cmd_name} commands (lampo {cmd_name} --help).")
        return TyperCommand(cmd_name, help=help_text, short_help=help_text)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name is not None and name not in self.commands and name in lazy_commands():
            _local_keys_database(lazy_commands()[name])
            self.commands[name] = load(name)
        return super().resolve_command(ctx, args)

    def load_all(self) -> None:
        """Load every group (the tests walk the whole tree)."""
        for name in lazy_commands():
            if name not in self.commands:
                self.commands[name] = load(name)


app = typer.Typer(
    name="lampo",
    cls=LazyGroup,
    help="Muuramen Lämpö customer register and privacy suite: operator commands.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold personal data
)


@app.command()
def keygen() -> None:
    """Print a new random master key (base64 of 32 bytes) for LAMPO_MASTER_KEY."""
    from lampo.crypto import new_master_key

    typer.echo(new_master_key())


@app.command("signing-keygen")
def signing_keygen() -> None:
    """Print a new Ed25519 signing key pair: line 1 the private key (LAMPO_SIGNING_KEY of one
    service), line 2 its public key (for the others' LAMPO_TRUSTED_KEYS). Base64, raw 32 bytes."""
    from lampo.signing import new_key_pair

    private, public = new_key_pair()
    typer.echo(private)
    typer.echo(public)


@app.command("signing-public")
def signing_public() -> None:
    """Read a private signing key (base64) on standard input; print its public key."""
    from lampo.signing import private_key, public_of

    typer.echo(public_of(private_key(sys.stdin.readline())))  # InvalidKey: one line (lampo.cli.errors)


# light: the command imports what it uses inside
from lampo.cli.seed import seed as seed_command  # noqa: E402

app.command("seed")(seed_command)


def _local_keys_database(target: str) -> None:
    """Locally (`make up`), each service keeps its subject keys in lampo_<service>_keys: the
    service's commands read them there too, unless LAMPO_KEYS_DATABASE says otherwise."""
    from lampo.cli.local import keys_database_default

    keys_database_default(target)


def command() -> click.Command:
    """The root click command (loads nothing but the built-in commands)."""
    return typer.main.get_command(app)


def main(args: list[str] | None = None) -> None:
    from lampo.cli.errors import report
    from lampo.cli.local import use_local_state

    use_local_state()
    if not os.environ.get("LAMPO_DEBUG"):  # a library's log line is not for the operator: the error is worded once
        import logging

        logging.getLogger().addHandler(logging.NullHandler())
    # a password prompt without a terminal: the prompt's end of input is the one line ("aborted")
    import getpass
    import warnings

    warnings.filterwarnings("ignore", category=getpass.GetPassWarning)
    root = command()
    try:
        code = root.main(args=args, prog_name="lampo", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `lampo dsar`: its help (Typer printed it already)
        if e.format_message().strip():
            typer.echo(e.format_message())
        code = 2
    except BaseException as e:
        if isinstance(e, SystemExit):
            raise
        if os.environ.get("LAMPO_DEBUG"):
            raise
        code = report(e)
    sys.exit(code if isinstance(code, int) else 0)
