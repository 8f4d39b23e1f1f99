"""Fixtures for the service: a store on SQLite and on a real PostgreSQL, an app with two studios, and uploads.

The service's tests import their helpers by name (``from service_helpers import ...``): this folder is on
sys.path through this conftest.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from postgres import postgres_bin, postgres_server  # noqa: E402
from service_helpers import SMALL_LIMITS, Studio, new_studio  # noqa: E402

from shotfit.service.app import create_app  # noqa: E402
from shotfit.service.settings import ServiceSettings  # noqa: E402

_SKIP_PG = "PostgreSQL is not installed here (scripts/test-services.sh installs Debian's postgresql)"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server for the session (its own cluster in a temporary folder)."""
    if postgres_bin() is None:
        pytest.skip(_SKIP_PG)
    with postgres_server() as url:
        yield url


def _fresh_database(server_url: str) -> str:
    import psycopg  # only the PostgreSQL half of the tests needs it

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, then a database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return _fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(storage=tmp_path / "storage", limits=SMALL_LIMITS)


@pytest.fixture
def app(settings: ServiceSettings):
    """The app, API only (jobs stay queued: no runner), without the webhook sender."""
    return create_app(settings, send_webhooks=False)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def studios(app) -> tuple[Studio, Studio]:
    """Two studios with a key each."""
    return new_studio(app.state.store, "Acme VFX"), new_studio(app.state.store, "Zeta Post")
