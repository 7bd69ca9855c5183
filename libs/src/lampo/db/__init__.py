"""PostgreSQL access shared by every service: pools, databases and numbered migrations."""

from lampo.db.migrations_runner import Migration, MigrationSource, keys_migrations, migrate, platform_migrations
from lampo.db.pool import create_pool, ensure_database, server_url_of

__all__ = [
    "Migration",
    "MigrationSource",
    "create_pool",
    "ensure_database",
    "keys_migrations",
    "migrate",
    "platform_migrations",
    "server_url_of",
]
