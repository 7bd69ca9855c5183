"""One line for every failure an operator can expect, worded once for every command.

:func:`report` is called by ``lampo``'s main with whatever a command raised: it prints one line
on stderr (``lampo: ...``) and returns the exit code. 1: refused or failed (an unknown id, a
refusal by a service, a wrong state); 2: the command cannot run as configured or invoked (a
setting missing, a server unreachable, a database missing, a bad argument). The line names
settings, hosts, databases and reason codes, never a value that may be personal data.

Exception types of a library are only checked once it is imported (``sys.modules``): an error
of asyncpg can only have been raised by a command that imported asyncpg, and the CLI does not
import it to find out.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer import _click as click  # Typer (0.27) runs on a copy of click of its own: its types, not the click package

REFUSED = 1
CANNOT_RUN = 2


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _module(name: str) -> Any:
    return sys.modules.get(name)


def _describe(e: BaseException) -> tuple[str, int] | None:  # noqa: PLR0911 - one case a line
    """(message, exit code) for an expected failure; None for an unexpected one."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(e, click.exceptions.Abort):
        return "aborted", REFUSED
    if isinstance(e, click.exceptions.UsageError):  # a bad argument or option: the command's --help tells more
        where = e.ctx.command_path if e.ctx else "lampo"
        said = e.format_message() if where == "lampo" else f"{where}: {e.format_message()}"
        return f"{said} (see {where} --help)", CANNOT_RUN
    if isinstance(e, click.exceptions.ClickException):
        return e.format_message(), e.exit_code or REFUSED
    settings = _module("lampo.settings")
    if settings is not None and isinstance(e, settings.MissingSetting):
        return str(e), CANNOT_RUN
    asyncpg = _module("asyncpg")
    if asyncpg is not None:
        if isinstance(e, asyncpg.InvalidCatalogNameError):  # names the database, nothing personal
            return f"{e} (has the service run once? `make up` starts it)", CANNOT_RUN
        if isinstance(e, asyncpg.UndefinedTableError):
            return f"{e}: the database is not the service's, or it has not run once", CANNOT_RUN
        if isinstance(e, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return f"PostgreSQL refused the login: {e}", CANNOT_RUN
        if isinstance(e, asyncpg.PostgresError):  # the message names objects; the values are in its detail
            return f"PostgreSQL: {type(e).__name__}: {e}", REFUSED
        if isinstance(e, asyncpg.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError):
            return f"the connection to PostgreSQL failed: {e}", CANNOT_RUN
    httpx = _module("httpx")
    if httpx is not None:
        if isinstance(e, httpx.HTTPStatusError):
            return f"refused: {e.request.url.host} answered HTTP {e.response.status_code}", REFUSED
        if isinstance(e, httpx.HTTPError):
            where = e.request.url.copy_with(query=None) if _has_request(e) else "the server"
            return f"cannot reach {where} ({type(e).__name__})", CANNOT_RUN
    kafka = _module("aiokafka.errors")
    if kafka is not None and isinstance(e, kafka.KafkaError):
        return f"Kafka: {type(e).__name__}: {e} (is LAMPO_KAFKA_BOOTSTRAP right?)", CANNOT_RUN
    pydantic = _module("pydantic")
    if pydantic is not None and isinstance(e, pydantic.ValidationError):  # a setting or an input: fields, no values
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or e.title}: {err['msg']}" for err in e.errors(include_input=False)
        )
        return f"invalid {e.title}: {fields}", CANNOT_RUN
    if isinstance(e, ConnectionError | TimeoutError) or (
        isinstance(e, OSError) and e.filename is None and e.errno is None
    ):  # asyncpg's "Multiple exceptions: [Errno 111] Connect call failed ..." is a bare OSError
        return f"cannot reach a required service: {type(e).__name__}: {e}", CANNOT_RUN
    if isinstance(e, OSError):
        if e.filename is not None:
            return f"{e.strerror}: {e.filename}", CANNOT_RUN
        return f"cannot reach a required service: {type(e).__name__}: {e}", CANNOT_RUN
    reason, detail = getattr(e, "reason", None), getattr(e, "detail", None)
    if isinstance(reason, str) and isinstance(detail, str):  # the project's refusals: reason code and detail
        return f"refused ({reason}): {detail}", REFUSED
    if isinstance(e, BaseExceptionGroup):
        described = [_describe(sub) for sub in e.exceptions]
        if described and all(d is not None for d in described):
            return described[0]
    signing = _module("lampo.signing")
    if signing is not None and isinstance(e, signing.InvalidKey):
        return str(e), CANNOT_RUN
    return None


def _has_request(e: Any) -> bool:
    try:
        e.request  # noqa: B018 - httpx raises RuntimeError when the error has no request
    except RuntimeError:
        return False
    return True


def report(e: BaseException) -> int:
    """Print ``e`` as one line on stderr; the exit code. Unexpected errors are named by type only
    (their message may hold anything); LAMPO_DEBUG=1 shows their traceback."""
    try:
        described = _describe(e)
    except Exception:  # noqa: BLE001 - the wording must not fail louder than the error itself
        described = None
    if described is None:
        message, code = f"unexpected {type(e).__name__} (LAMPO_DEBUG=1 shows the traceback)", REFUSED
    else:
        message, code = described
    typer.secho(f"lampo: {_one_line(message)}", fg="red", err=True)
    return code
