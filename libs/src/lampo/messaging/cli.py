"""``lampo topics``: provision and list the suite's topics."""

from __future__ import annotations

import os

import typer

from lampo.cli.runner import run

app = typer.Typer(help="Kafka topics of the suite (declared in lampo.messaging.topics).", no_args_is_help=True)


def _bootstrap() -> str:
    return os.environ.get("LAMPO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@app.command("provision")
def provision_cmd(
    bootstrap: str = typer.Option(
        None, help="Kafka bootstrap servers (default LAMPO_KAFKA_BOOTSTRAP or 127.0.0.1:9092)"
    ),
    replication_factor: int = typer.Option(1, help="replicas per partition (1 on a single local node)"),
) -> None:
    """Create missing topics, apply the declared configs to existing ones and raise their
    partitions to the declared count. Safe to repeat."""
    from lampo.messaging.topics import provision
    from lampo.settings import ServiceSettings

    # TLS/SASL from the same LAMPO_KAFKA_* settings the services use (nothing when PLAINTEXT).
    options = ServiceSettings(master_key=None).kafka_client_options()
    outcome = run(provision(bootstrap or _bootstrap(), replication_factor=replication_factor, client_options=options))
    created = sorted(t for t, o in outcome.items() if o == "created")
    raised = sorted(t for t, o in outcome.items() if o == "partitions raised")
    typer.echo(f"topics: {len(created)} created, {len(outcome) - len(created)} already present (configs applied)")
    if raised:
        typer.echo(f"partitions raised to the declared count: {', '.join(raised)}")


@app.command("list")
def list_cmd() -> None:
    """Show the declared topics with partitions, cleanup policy and retention."""
    from rich.console import Console
    from rich.table import Table

    from lampo.messaging.topics import TOPICS

    table = Table("topic", "partitions", "cleanup", "retention", "personal data", "purpose", "why this retention")
    for t in TOPICS:
        table.add_row(
            t.name,
            str(t.partitions),
            "compact" if t.compact else "delete",
            t.retention_text(),
            "yes" if t.personal_data else "no",
            t.purpose,
            t.retention_reason,
        )
    Console().print(table)
