import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from posthouse.db.engine import create_engine
from posthouse.db.migrate import alembic_config
from posthouse.db.models import Base


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    engine = create_engine(database_url, null_pool=True)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    await engine.dispose()

    assert differences == []


async def test_the_last_migration_goes_down_and_up_again(database_url: str) -> None:
    config = alembic_config(database_url)

    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(command.upgrade, config, "head")

    engine = create_engine(database_url, null_pool=True)
    async with engine.connect() as connection:
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    await engine.dispose()
    assert version == ScriptDirectory.from_config(config).get_current_head()
