"""``lampo``: the operator CLI. Each installed service adds its own sub-commands through the
``lampo.cli`` entry-point group (a Typer app per service), so the CLI grows as services land."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from lampo.cli.seed import seed as seed_command  # light: its heavy imports are inside
from lampo.crypto import new_master_key

app = typer.Typer(
    name="lampo",
    help="Muuramen Lämpö customer register and privacy suite: operator commands.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold personal data
)


@app.command()
def keygen() -> None:
    """Print a new random master key (base64 of 32 bytes) for LAMPO_MASTER_KEY."""
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
    import sys

    from lampo.signing import InvalidKey, private_key, public_of

    try:
        typer.echo(public_of(private_key(sys.stdin.readline())))
    except InvalidKey as e:
        typer.secho(f"lampo: {e}", fg="red", err=True)
        raise typer.Exit(2) from e


app.command("seed")(seed_command)


def _load_plugins() -> None:
    from lampo.cli.keys import app as keys_app
    from lampo.db.cli import app as db_app

    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    for entry in sorted(entry_points(group="lampo.cli"), key=lambda e: e.name):
        try:
            sub = entry.load()
        except ImportError as e:  # one broken service must not take the whole CLI down
            typer.secho(f"lampo: the '{entry.name}' commands are unavailable: {e}", fg="yellow", err=True)
            continue
        app.add_typer(sub, name=entry.name)


def main() -> None:
    from lampo.settings import MissingSetting

    _load_plugins()
    try:
        app()
    except MissingSetting as e:  # a configuration to give, not a fault to trace back
        typer.secho(f"lampo: {e}", fg="red", err=True)
        raise SystemExit(2) from None
