"""``lampo admin approve`` / ``lampo admin deny``: the operator's approval goes through the same
check as the staff API's, with the operator's own account. The CLI logs in to the staff service
(user from ``--user`` or LAMPO_STAFF_USER, password from LAMPO_STAFF_PASSWORD or a hidden prompt)
and calls its approve or deny route; the staff service checks the role, audits and signs.

A wrong password, a missing role or an unreachable service is one line on stderr and exit 1,
never a traceback."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import typer

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8080"

UserOption = typer.Option(None, "--user", envvar="LAMPO_STAFF_USER", help="your staff account (default: prompted)")
UrlOption = typer.Option(DEFAULT_URL, "--url", envvar="LAMPO_STAFF_URL", help="the staff service")


def _refused(response: httpx.Response) -> typer.Exit:
    try:
        error = response.json()["error"]
        message = f"refused ({error['reason']}): {error['detail']}"
    except (ValueError, KeyError, TypeError):
        message = f"refused: the staff service answered {response.status_code}"
    typer.secho(f"lampo: {message}", fg="red", err=True)
    return typer.Exit(1)


def _decide(url: str, user: str | None, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    import httpx

    username = user or typer.prompt("Staff user")
    password = os.environ.get("LAMPO_STAFF_PASSWORD") or typer.prompt("Password", hide_input=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            login = client.post("/v1/login", json={"username": username, "password": password})
            if login.status_code != 200:
                raise _refused(login)
            headers = {"authorization": f"Bearer {login.json()['token']}"}
            response = client.post(path, json=body, headers=headers)
            client.post("/v1/logout", headers=headers)
    except httpx.HTTPError as e:
        typer.secho(f"lampo: the staff service at {url} is unreachable ({type(e).__name__})", fg="red", err=True)
        raise typer.Exit(1) from None
    except (ValueError, KeyError):  # not the staff service's JSON
        typer.secho(f"lampo: {url} did not answer as the staff service does", fg="red", err=True)
        raise typer.Exit(1) from None
    if response.status_code >= 300:
        raise _refused(response)
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"by": username}
    return answer


def approve(request_id: str, user: str | None = UserOption, url: str = UrlOption) -> None:
    """Approve a request waiting for approval, as yourself (the managing director's role)."""
    answer = _decide(url, user, f"/v1/dsar/requests/{quote(request_id, safe='')}/approve", None)
    typer.echo(f"approved {request_id} by {answer['by']}: published, signed by the staff service")


def deny(
    request_id: str,
    reason: str = typer.Option(..., "--reason", help="told to the requester (no personal data)"),
    user: str | None = UserOption,
    url: str = UrlOption,
) -> None:
    """Deny a request waiting for approval, as yourself (the managing director's role)."""
    answer = _decide(url, user, f"/v1/dsar/requests/{quote(request_id, safe='')}/deny", {"reason": reason})
    typer.echo(f"denied {request_id} by {answer['by']}")
