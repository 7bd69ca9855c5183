"""``lampo dsar``, run as an operator runs it (a separate process on the service's database)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from dsar_support import DSAR_TOKEN, MASTER_KEY, ParticipantProcess, dsar_service, participants

from lampo.clock import SystemClock
from lampo.contracts.privacy import PrivacyTask
from lampo.dsar.domain import extended_due_at
from lampo.participant import TaskOutcome
from lampo.synthetic import approve
from lampo.testing import eventually

LAMPO = str(Path(sys.executable).parent / "lampo")


async def erase(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(erased={"contact": 2})


async def access(conn: Any, task: PrivacyTask) -> TaskOutcome:
    return TaskOutcome(result={"contact": [{"city": "Muurame", "origin": "subject", "legal_basis": "contract"}]})


async def lampo(env: Any, *args: str) -> tuple[int, str]:
    environ = dict(
        os.environ,
        LAMPO_DATABASE=env.settings.database,
        LAMPO_MASTER_KEY=MASTER_KEY,
        LAMPO_REGISTRY_URL=env.settings.registry_url,
        LAMPO_API_TOKEN=DSAR_TOKEN,
        LAMPO_SOURCE=env.settings.source,
        LAMPO_STORE_RESOLVE_URLS="{}",
        # the operator's CLI runs with the service's configuration
        LAMPO_PARTICIPANTS='["t-cli"]',
        LAMPO_APPROVERS='["toimitusjohtaja"]',
        COLUMNS="200",
    )
    process = await asyncio.create_subprocess_exec(
        LAMPO, "dsar", *args, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_the_operator_cli_submits_approves_follows_extends_reports_and_writes_packages(
    registry, tmp_path
) -> None:
    registry.add("500100")
    async with (
        participants(ParticipantProcess("t-cli", {"erasure": erase, "access": access})),
        # the CLI runs as its own process on the system's clock, so the service does too
        dsar_service(registry, participants=["t-cli"], approvers=["toimitusjohtaja"], clock=SystemClock()) as env,
    ):
        code, out = await lampo(
            env, "submit", "erasure", "--customer-number", "500100", "--verified-by", "asiakaspalvelu:anna"
        )
        assert code == 0, out
        [rid] = re.findall(r"submitted (\S+)", out)
        await eventually(lambda: env.status(rid), timeout=20)
        await eventually(lambda: _is(env, rid, "awaiting_approval"), timeout=20)

        code, out = await lampo(env, "approve", rid)  # not by a name typed here: through the staff service
        assert code == 2 and "lampo admin approve" in out and "Traceback" not in out
        code, out = await lampo(env, "due", "--days", "40")
        assert rid in out
        code, out = await lampo(env, "extend", rid, "--reason", "records in three archives", "--by", "dpo:liisa")
        # three calendar months from receipt (the dates themselves: test_approval_and_deadline)
        extended = extended_due_at((await env.request(rid))["received_at"])
        assert code == 0 and f"now due {extended:%Y-%m-%d %H:%M}" in out, out
        await approve(rid, "toimitusjohtaja")  # as the staff service publishes it, signed
        await eventually(lambda: _is(env, rid, "completed"), timeout=30)
        code, out = await lampo(env, "status", rid)
        assert code == 0 and "t-cli" in out and "toimitusjohtaja" in out and "completed" in out
        code, out = await lampo(env, "report", rid, "--raw")
        assert code == 0 and "# Erasure report" in out and "| t-cli | done | contact | 2 |" in out
        code, out = await lampo(env, "retry", rid, "--participant", "t-cli")
        assert code == 1 and "wrong_state" in out
        code, out = await lampo(env, "list")
        assert rid in out

        code, out = await lampo(
            env, "submit", "access", "--customer-number", "500100", "--verified-by", "asiakaspalvelu:anna"
        )
        [access_id] = re.findall(r"submitted (\S+)", out)
        await eventually(lambda: _is(env, access_id, "completed"), timeout=30)
        target = tmp_path / "package.zip"
        code, out = await lampo(env, "package", access_id, "--out", str(target))
        assert code == 0, out
        with zipfile.ZipFile(target) as archive:
            assert "manifest.json" in archive.namelist() and "data/contact.json" in archive.namelist()


async def _is(env: Any, rid: str, status: str) -> bool:
    return await env.status(rid) == status


async def test_the_cli_refuses_bad_input_naming_the_field_and_takes_an_objection_with_its_scope(registry) -> None:
    registry.add("500200")
    async with dsar_service(registry, participants=["t-cli"], clock=SystemClock()) as env:
        submit = ("submit", "--customer-number", "500200", "--verified-by", "asiakaspalvelu:anna")
        no_scope = await lampo(env, submit[0], "objection", *submit[1:])
        bad_scope = await lampo(env, submit[0], "objection", *submit[1:], "--scope", "everything")
        no_section = await lampo(env, submit[0], "rectification", *submit[1:], "--corrections", '{"shoe_size": {}}')
        bad_code = await lampo(
            env, submit[0], "rectification", *submit[1:],
            "--corrections", '{"person": {"personal_identity_code": "131052-308U"}}',
        )  # fmt: skip
        lift_not_restriction = await lampo(env, submit[0], "access", *submit[1:], "--lift")
        async with env.pool.acquire() as conn:
            stored = await conn.fetchval("SELECT count(*) FROM requests")
        objection = await lampo(env, submit[0], "objection", *submit[1:], "--scope", "profiling")
        [rid] = re.findall(r"submitted (\S+)", objection[1])
        await eventually(lambda: env.status(rid), timeout=20)
        async with env.pool.acquire() as conn:
            scope = await conn.fetchval("SELECT scope FROM requests WHERE request_id = $1", rid)

    for (code, out), field in [
        (no_scope, "scope"), (bad_scope, "data.scope"), (no_section, "data.corrections.shoe_size"),
        (bad_code, "data.corrections.person.personal_identity_code"), (lift_not_restriction, "lift"),
    ]:  # fmt: skip
        assert code == 1 and "invalid" in out and field in out, out
    assert "131052-308U" not in bad_code[1] and "everything" not in bad_scope[1]
    assert stored == 0  # nothing half-applied
    assert objection[0] == 0 and scope == "profiling"


async def test_the_cli_writes_a_package_0600_refuses_to_overwrite_audits_and_answers_410_once_destroyed(
    registry, tmp_path
) -> None:
    from lampo.dsar import packages

    registry.add("500300")
    async with (
        participants(ParticipantProcess("t-cli", {"access": access})),
        dsar_service(registry, participants=["t-cli"], clock=SystemClock()) as env,
    ):
        code, out = await lampo(
            env, "submit", "access", "--customer-number", "500300", "--verified-by", "asiakaspalvelu:anna"
        )
        [rid] = re.findall(r"submitted (\S+)", out)
        await eventually(lambda: _is(env, rid, "completed"), timeout=30)
        target = tmp_path / "package.zip"
        code, out = await lampo(env, "package", rid, "--out", str(target), "--as", "dpo:liisa")
        assert code == 0, out
        mode = target.stat().st_mode & 0o777
        written = target.read_bytes()
        code_again, out_again = await lampo(env, "package", rid, "--out", str(target))
        unchanged = target.read_bytes()
        async with env.pool.acquire() as conn, conn.transaction():
            await packages.destroy(conn, env.coordinator.keys, rid, at=env.clock.now(), reason="expired")
        gone_target = tmp_path / "again.zip"
        code_gone, out_gone = await lampo(env, "package", rid, "--out", str(gone_target), "--as", "dpo:liisa")
        code_log, out_log = await lampo(env, "package-log", rid)
        completion = (await env.request(rid))["completion"]

    assert mode == 0o600
    assert hashlib.sha256(written).hexdigest() == completion["package"]["sha256"]
    assert code_again == 1 and "exists" in out_again and unchanged == written
    assert code_gone == 1 and "410 gone" in out_gone and not gone_target.exists()
    assert code_log == 0
    lines = [line for line in out_log.splitlines() if "dpo:liisa" in line]
    assert "delivered" in lines[0] and "gone" in lines[-1] and "cli_write" in lines[0]
    assert "destroy" in out_log and "system" in out_log
