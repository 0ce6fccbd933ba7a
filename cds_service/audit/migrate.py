"""Versioned schema migrations (Alembic), applied at start under a lock: replicas may start together."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from cds_service.errors import ConfigError
from cds_service.logs import log_event

log = logging.getLogger(__name__)
# Alembic talks at INFO on every look at the version table; the upgrade itself is logged below.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "audit_schema_version"
# Any fixed 64-bit number; PostgreSQL advisory locks are named by numbers.
_PG_LOCK_KEY = 0x0DE7_F7EE_A0D1_7001


def alembic_config() -> AlembicConfig:
    """The Alembic configuration, built in code: no alembic.ini to ship or to find."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # noqa: S101 - the package ships its migrations
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    """The schema revision of a database (None: never migrated)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision; a no-op when it is there. Returns the revision.

    Several workers or replicas may start at once: each takes the migration lock in its own
    transaction (PostgreSQL: an advisory transaction lock; SQLite: the database's write lock, taken by
    BEGIN IMMEDIATE), so one migrates while the others wait and then find nothing to do.
    """
    config = alembic_config()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        found = current_revision(connection)
        if found is not None and found not in known_revisions():
            # A newer release migrated this database: running older code on it could corrupt it.
            raise ConfigError(f"The audit store's schema revision {found} is newer than this release "
                              f"knows ({head_revision()}); run the newer release")
        if found != head_revision():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        revision = current_revision(connection)
    if revision != found:
        log_event(log, "audit schema upgraded", fromRevision=found, toRevision=revision)
    assert revision is not None  # noqa: S101
    return revision
