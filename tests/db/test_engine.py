import pytest

from posthouse.db.engine import async_database_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/mail", "postgresql+asyncpg://u:p@db:5432/mail"),
        ("postgresql+psycopg://u:p@db/mail", "postgresql+asyncpg://u:p@db/mail"),
        ("postgresql+asyncpg://db/mail", "postgresql+asyncpg://db/mail"),
        ("sqlite:///./var/posthouse.db", "sqlite+aiosqlite:///./var/posthouse.db"),
        ("sqlite+aiosqlite:////tmp/p.db", "sqlite+aiosqlite:////tmp/p.db"),
    ],
)
def test_database_url_runs_on_the_async_driver(given: str, used: str) -> None:
    assert async_database_url(given) == used


def test_other_databases_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        async_database_url("mysql://root@localhost/mail")
