"""Ciphertext is stored as it is: PostgreSQL never tries to compress what cannot shrink (the
outbox's values, sealed result parts, encrypted package chunks) on the access path."""

from __future__ import annotations

from dsar_support import dsar_service


async def test_ciphertext_columns_are_stored_uncompressed(registry) -> None:
    async with dsar_service(registry, run_checker=False) as env, env.pool.acquire() as conn:
        storage = await conn.fetch(
            "SELECT c.relname AS table_name, a.attname AS column_name, a.attstorage::text FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE (c.relname, a.attname) IN"
            " (('outbox', 'value'), ('result_parts', 'data'), ('package_chunks', 'blob'), ('packages', 'blob'))"
        )
    assert {(r["table_name"], r["column_name"]): r["attstorage"] for r in storage} == {
        ("outbox", "value"): "e",  # external: out of line, uncompressed
        ("result_parts", "data"): "e",
        ("package_chunks", "blob"): "e",
        ("packages", "blob"): "e",
    }
