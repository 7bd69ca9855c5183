"""The whole suite as separate processes, as in production: each service started from its own
`lampo-<name>` executable, with its own database and consumer group, and an OTLP receiver standing
in for the tracing backend so tests can read every exported span. Used by the system, fault and
privacy tests (their conftests start a `Suite` with `launch`)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import sys
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import text_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lampo.crypto import new_master_key
from lampo.db.roles import drop_role, protect_audit, provision
from lampo.mail import read_mailbox
from lampo.messaging.topics import TOPICS
from lampo.testing import PG_URL, drop_database, fast_forward_group, signing_key_for, trusted_keys_for, unique

SERVICES = ["registry", "billing", "recordings", "consent", "retention", "dsar", "staff", "portal"]
BIN = Path(sys.executable).parent
# Who answers whom over HTTP (LAMPO_API_CLIENTS), as deploy/local/services.sh and
# docker-compose.yml provision it. Every service presents its own token (LAMPO_API_TOKEN); the
# portal is the outside channel that submits requests, marketing the system that reads the
# direct-marketing audience (the tests act as both).
ANSWERS = {
    "registry": ["staff", "dsar", "marketing", "portal"],
    "dsar": ["staff", "portal"],
    "billing": ["dsar", "staff"],
    "recordings": ["dsar", "staff"],
    "consent": ["dsar", "portal", "staff"],
}
CALLERS = [*dict.fromkeys([*SERVICES, "portal", "marketing"])]  # the portal is a service too


ZIPKIN = f"http://127.0.0.1:{os.environ.get('LAMPO_ZIPKIN_PORT', '9411')}"


def runtime_env() -> dict[str, str]:
    """deploy/runtime.env: how a service process runs in production (trace sampling, malloc
    arenas), as docker-compose.yml and `make up` run it; the caller's environment wins."""
    out = {}
    for line in (Path(__file__).resolve().parents[1] / "deploy" / "runtime.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper() and not key.startswith("#"):
            out[key] = os.environ.get(key, value)
    return out


def zipkin_running() -> bool:
    try:
        return httpx.get(f"{ZIPKIN}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    [port] = free_ports(1)
    return port


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all held open until all are chosen (one at a time, the kernel
    may hand the same port out twice, and two services would then share one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    attributes: dict[str, Any]
    text: str = ""
    """Everything exported with the span (name, attributes, events, links, status, resource) as
    protobuf text, for the privacy tests' leak search."""


class OtlpReceiver:
    """Receives OTLP/HTTP protobuf trace exports (POST /v1/traces), keeps the spans; with
    ``keep=False`` reads and drops them (a benchmark's tracing backend, which in production runs
    on hosts of its own: the services encode and send every span, nothing here parses them)."""

    def __init__(self, keep: bool = True) -> None:
        self.spans: list[Span] = []
        self.bytes_received = 0
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.bytes_received += len(body)
                if not keep:
                    self.send_response(200)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for rs in request.resource_spans:
                    service = next(
                        (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "?"
                    )
                    resource = text_format.MessageToString(rs.resource, as_utf8=True)
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            attrs = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                            text = text_format.MessageToString(span, as_utf8=True) + resource
                            receiver.spans.append(Span(service, span.name, span.trace_id.hex(), attrs, text))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class MailCatcher:
    """The local SMTP server (``python -m lampo.mail.catcher``, as deploy/local/mail.sh runs it) on
    a free port, keeping every message the services send as an ``.eml`` file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lampo.mail.catcher", "--port", str(self.port), "--dir", str(self.directory),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)  # printed once listening
        assert f":{self.port}" in line.decode(), f"mail catcher did not start: {line!r}"

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    @property
    def env(self) -> dict[str, str]:
        return {"LAMPO_SMTP_HOST": "127.0.0.1", "LAMPO_SMTP_PORT": str(self.port)}

    def messages(self) -> list[EmailMessage]:
        return read_mailbox(self.directory)


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def port(self) -> int:
        return int(self.env["LAMPO_HTTP_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, ready_timeout: float = 60) -> None:
        handle = self.log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            str(BIN / f"lampo-{self.name}"), env=self.env, stdout=handle, stderr=handle
        )
        await self.wait_ready(ready_timeout)

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self.process and self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited ({self.process.returncode}); see {self.log}")
                try:
                    answer = await client.get(f"{self.url}/health/ready", timeout=2)
                    if answer.status_code == 200:
                        # this service's answer, not another's that took the port meanwhile
                        assert answer.json().get("service") == self.name, f"port {self.port} answered by {answer.text}"
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name} not ready within {timeout}s; see {self.log}")
                await asyncio.sleep(0.2)

    async def stop(self, *, kill: bool = False) -> None:
        if self.process and self.process.returncode is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Suite:
    services: dict[str, ServiceProcess]
    otlp: OtlpReceiver
    logs: Path
    databases: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """Each caller's credential (every service's own, and the portal's)."""
    replicas: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    """Every instance of each service, the one in ``services`` (instance 0) first."""
    mail: MailCatcher | None = None
    """The SMTP server every service sends to; ``suite.mailbox()`` reads what it kept."""

    def mailbox(self) -> list[EmailMessage]:
        """Every message the services have sent so far, oldest first."""
        return self.mail.messages() if self.mail else []

    def instances(self, name: str) -> list[ServiceProcess]:
        return self.replicas.get(name) or [self.services[name]]

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def as_caller(self, name: str) -> dict[str, str]:
        """The ``Authorization`` header of ``name`` (a service, or ``portal``)."""
        return {"authorization": f"Bearer {self.tokens[name]}"}

    @property
    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.services.items()}

    async def close(self) -> None:
        await asyncio.gather(*(s.stop() for name in self.services for s in self.instances(name)))
        self.otlp.stop()
        if self.mail:
            await self.mail.stop()
        for database in self.databases:
            await drop_database(database)
            await drop_database(keys_database_of(database))
            await drop_role(PG_URL, database)


def keys_database_of(database: str) -> str:
    """Where a service of the suite keeps its per-subject keys: a database of their own, apart
    from the data they open (docs/KEYS-AND-BACKUPS.md), as `make up` and compose run it."""
    return f"{database}_keys"


async def own_role(name: str, database: str) -> dict[str, str]:
    """Each service runs as a role of its own, owner of its database and its keys database
    alone (``lampo db provision``), named after this run's database so parallel runs never
    share one."""
    password = secrets.token_hex(16)
    await provision(PG_URL, name, password, database=database, role=database)
    await provision(PG_URL, name, password, database=keys_database_of(database), role=database)
    return {
        "LAMPO_PG_ROLE": database,
        "LAMPO_PG_ROLE_PASSWORD": password,
        "LAMPO_KEYS_DATABASE": keys_database_of(database),
    }


def signer_of(service: str) -> str:
    """The name a service signs under (the DSAR service signs tasks as the coordinator)."""
    return "coordinator" if service == "dsar" else service


def installed() -> list[str]:
    """Installed services, optionally narrowed by LAMPO_SYSTEM_SERVICES=a,b for development."""
    wanted = [s for s in os.environ.get("LAMPO_SYSTEM_SERVICES", "").split(",") if s] or SERVICES
    return [s for s in SERVICES if s in wanted and shutil.which(f"lampo-{s}", path=str(BIN))]


def make_up_running() -> list[str]:
    """Instances that `make up` (deploy/local/services.sh) started and that still run, from their pid
    files under the state directory in use (LAMPO_STATE_DIR, default .run)."""
    state = Path(os.environ.get("LAMPO_STATE_DIR") or Path(__file__).resolve().parents[1] / ".run")
    alive = []
    for pid_file in sorted((state / "services").glob("*.pid")):
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (ValueError, ProcessLookupError, PermissionError):
            continue
        alive.append(pid_file.stem)
    return alive


async def launch(
    names: list[str],
    logs: Path,
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60,
    replicas: int = 1,
    keep_spans: bool = True,
) -> Suite:
    """Starts the named services, each with a new database and consumer group (fast-forwarded to
    the end of every topic, so earlier runs' records are not replayed), and waits until ready.
    ``replicas``: instances of each service, sharing its database and consumer group, each on a
    port of its own (``Suite.instances``); the others call instance 0, which starts last (so an
    instance other than the one called holds the outbox relay first). ``keep_spans=False``: the
    spans go to a receiver that drops them, and not to Zipkin (benchmarks: see OtlpReceiver).
    Refuses while `make up`'s services run on the same broker: they read the same topics, so its
    coordinator and participants would answer this suite's requests too (a test then sees another
    suite's package, a benchmark another suite's work)."""
    if others := make_up_running():
        raise RuntimeError(f"`make up` is running ({', '.join(others)}): stop it first with `make down`")
    otlp = OtlpReceiver(keep=keep_spans)
    otlp.start()
    mail = MailCatcher(logs / "mail")
    try:
        await mail.start()
    except BaseException:
        otlp.stop()
        await mail.stop()
        raise
    key = new_master_key()
    web_session_key = secrets.token_hex(32)  # one for every instance: a session holds on each
    zipkin = zipkin_running()
    tokens = {caller: secrets.token_urlsafe(24) for caller in CALLERS}
    all_ports = free_ports(len(names) * replicas)
    ports = dict(zip(names, all_ports[: len(names)], strict=True))
    more_ports = iter(all_ports[len(names) :])
    services: dict[str, ServiceProcess] = {}
    databases = []
    for name in names:
        database = unique(f"sys_{name}")
        databases.append(database)
        group = unique(f"sys-{name}")
        await fast_forward_group(group, [t.name for t in TOPICS])
        service_env = {
            **os.environ,
            **(env or {}),
            "LAMPO_DATABASE": database,
            "LAMPO_CONSUMER_GROUP": group,
            "LAMPO_MASTER_KEY": key,
            "LAMPO_WEB_SESSION_KEY": web_session_key,
            "LAMPO_HTTP_PORT": str(ports[name]),
            "LAMPO_API_TOKEN": tokens[name],
            "LAMPO_API_CLIENTS": json.dumps({caller: tokens[caller] for caller in ANSWERS.get(name, [])}),
            # Authenticity: each service signs with its (test) key; all trust every test signer,
            # so a test can also sign by hand (lampo.testing.Producer.send(signer=...)).
            "LAMPO_SIGNER": signer_of(name),
            "LAMPO_SIGNING_KEY": signing_key_for(signer_of(name)),
            "LAMPO_TRUSTED_KEYS": json.dumps(trusted_keys_for()),
            "OTEL_SERVICE_NAME": f"lampo-{name}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **mail.env,
        }
        if zipkin and keep_spans:  # the real tracing backend too, when `make infra` started it
            service_env["LAMPO_ZIPKIN_ENDPOINT"] = f"{ZIPKIN}/api/v2/spans"
        else:
            service_env.pop("LAMPO_ZIPKIN_ENDPOINT", None)
        service_env |= await own_role(name, database)
        if "registry" in ports:
            service_env["LAMPO_REGISTRY_URL"] = f"http://127.0.0.1:{ports['registry']}"
        if "consent" in ports:  # the privacy centre's consent pages and statement
            service_env["LAMPO_CONSENT_URL"] = f"http://127.0.0.1:{ports['consent']}"
        if "dsar" in ports:
            service_env["LAMPO_DSAR_URL"] = f"http://127.0.0.1:{ports['dsar']}"
            service_env["LAMPO_PUBLIC_URL"] = f"http://127.0.0.1:{ports['dsar']}"  # packages' addresses
        if name == "staff":  # its audit heads apart from other suites' (each signs with its own key)
            service_env["LAMPO_AUDIT_HEAD_KEY"] = unique("staff-audit")
            service_env.setdefault("LAMPO_AUDIT_HEAD_INTERVAL_S", "2")  # a head out soon after each change
        if name == "portal":  # plain http, the stand-in of strong identification on, mail links to itself
            service_env |= {
                "LAMPO_WEB_INSECURE_COOKIES": "1",
                "LAMPO_STRONG_ID_STANDIN": "1",
                "LAMPO_PORTAL_URL": f"http://127.0.0.1:{ports[name]}",
            }
        for store in ("billing", "recordings", "consent"):  # the staff service reads them too
            if store in ports:
                service_env[f"LAMPO_{store.upper()}_URL"] = f"http://127.0.0.1:{ports[store]}"
        # The stores the coordinator asks for a customer the registry does not know.
        stores = {n: f"http://127.0.0.1:{ports[n]}" for n in ("billing", "recordings", "consent") if n in ports}
        service_env["LAMPO_STORE_RESOLVE_URLS"] = json.dumps(stores)
        services[name] = ServiceProcess(name, service_env, logs / f"{name}.log")
    suite = Suite(services, otlp, logs, databases, tokens, mail=mail)
    for name, first in services.items():
        suite.replicas[name] = [first] + [
            ServiceProcess(name, {**first.env, "LAMPO_HTTP_PORT": str(next(more_ports))}, logs / f"{name}.{i}.log")
            for i in range(1, replicas)
        ]
    try:
        others = [s for name in services for s in suite.instances(name)[1:]]
        await asyncio.gather(*(s.start(ready_timeout) for s in others))
        await asyncio.gather(*(s.start(ready_timeout) for s in services.values()))
        if "staff" in services:  # migrated: its audit log goes to lampo_audit_owner
            staff_db = services["staff"].env["LAMPO_DATABASE"]
            await protect_audit(PG_URL, "staff", staff_db, table="audit_log", function="audit_log_append_only",
                                role=staff_db)  # fmt: skip
    except BaseException:
        await suite.close()
        raise
    return suite
