"""Studio limits as an operator sets them and a key sees them, the request rate shared by every server on one
store (SQLite and the real PostgreSQL), and the security headers on every response."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi.testclient import TestClient
from service_helpers import SMALL_LIMITS, TINY_SETTINGS, Studio, new_studio, upload_folder
from shots import KEYFRAMES, edit, fails, plate, succeeds, write_shot
from sqlalchemy import create_engine, inspect, text

from shotfit.service.app import create_app
from shotfit.service.keys import authenticate
from shotfit.service.settings import Limits, ServiceSettings
from shotfit.service.store import open_store
from shotfit.service.store.db import MIGRATIONS, engine_url
from shotfit.service.studios import parse_setting, set_limits


def _server(tmp_path: Path, db_url: str, limits: Limits = SMALL_LIMITS):
    """One server's app (its own engine and pool, as another process would have) on the shared store."""
    return create_app(ServiceSettings(storage=tmp_path / "storage", db=db_url, limits=limits), send_webhooks=False)


def test_two_servers_on_one_store_share_a_keys_requests_a_minute(tmp_path: Path, db_url: str) -> None:
    first, second = _server(tmp_path, db_url), _server(tmp_path, db_url)
    acme = new_studio(first.state.store, "Acme VFX")
    set_limits(first.state.store, "Acme VFX", {"rate_per_minute": 24})
    codes: Counter[int] = Counter()
    retry_after: list[int] = []
    lock = threading.Lock()

    def hammer(client: TestClient) -> None:
        for _ in range(10):
            answer = client.get("/v1/me", headers=acme.headers)
            with lock:
                codes[answer.status_code] += 1
                if answer.status_code == 429:
                    retry_after.append(int(answer.headers["Retry-After"]))

    if time.time() % 60 > 55:  # all 40 requests in one minute of the count
        time.sleep(60 - time.time() % 60)
    with TestClient(first) as one, TestClient(second) as two:
        threads = [threading.Thread(target=hammer, args=(client,)) for client in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        info = one.get("/v1/studio", headers=acme.headers)
    # 40 requests at once through two servers: exactly the budget gets through, whichever server took them
    assert codes == {200: 24, 429: 16}, codes
    assert all(1 <= wait <= 60 for wait in retry_after)
    assert info.status_code == 429 and "24 requests a minute" in info.json()["detail"]


def test_the_studio_route_shows_the_limits_in_force_and_what_is_used(tmp_path: Path) -> None:
    app = _server(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    store = app.state.store
    acme, zeta = new_studio(store, "Acme VFX"), new_studio(store, "Zeta Post")
    set_limits(store, "Acme VFX", {"max_jobs": 1, "rate_per_minute": 500, "retention_days": 7.5,
                                   "max_upload_bytes": parse_setting("max_upload_bytes", "150kB")})
    source = write_shot(tmp_path / "plates")
    fixed = write_shot(tmp_path / "fixed", KEYFRAMES, make=lambda f: edit(plate(f)))
    with TestClient(app) as client:
        shot = client.post("/v1/shots", json={"name": "sh010"}, headers=acme.headers).json()["id"]
        upload_folder(client, acme, shot, "source", source)
        upload_folder(client, acme, shot, "keyframes", fixed)
        job = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot, "settings": TINY_SETTINGS},
                          headers=acme.headers)
        over = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot, "settings": TINY_SETTINGS},
                           headers=acme.headers)
        mine = client.get("/v1/studio", headers=acme.headers).json()
        theirs = client.get("/v1/studio", headers=zeta.headers).json()
    assert job.status_code == 201 and over.status_code == 429 and "its limit" in over.json()["detail"]
    stored = sum(p.stat().st_size for folder in (source, fixed) for p in folder.iterdir())
    requests = 2 + len(list(source.iterdir())) * 2 + len(list(fixed.iterdir())) * 2 + 1  # POST + PATCH a file
    assert mine == {"studio": "Acme VFX", "key_id": acme.key_id,
                    "limits": {"max_concurrent_jobs": 1, "requests_per_minute": 500, "max_file_bytes": 150_000,
                               "max_files": SMALL_LIMITS.max_files, "max_storage_bytes": SMALL_LIMITS.max_storage_bytes,
                               "max_pixels": SMALL_LIMITS.max_pixels, "retention_days": 7.5},
                    "usage": {"jobs_active": 1, "requests_this_minute": requests + 1, "shots": 1,
                              "files": len(list(source.iterdir())) + len(list(fixed.iterdir())),
                              "storage_bytes": stored}}
    # another studio sees its own (the server's defaults; rate 0 in these tests: unlimited, so nothing counted)
    assert theirs["limits"]["max_concurrent_jobs"] == SMALL_LIMITS.max_concurrent_jobs
    assert theirs["limits"]["retention_days"] is None and theirs["usage"] == {
        "jobs_active": 0, "requests_this_minute": 0, "shots": 0, "files": 0, "storage_bytes": 0}


def test_an_upload_over_the_studios_own_file_limit_is_refused(tmp_path: Path) -> None:
    png_bytes = sorted(write_shot(tmp_path / "plates").iterdir())[0].read_bytes()
    app = _server(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    acme = new_studio(app.state.store, "Acme VFX")
    set_limits(app.state.store, "Acme VFX", {"max_upload_bytes": len(png_bytes) - 1})
    with TestClient(app) as client:
        shot = client.post("/v1/shots", json={"name": "sh010"}, headers=acme.headers).json()["id"]
        answer = client.post(f"/v1/shots/{shot}/uploads", headers=acme.headers,
                             json={"role": "source", "name": "plate.0001.png", "size": len(png_bytes)})
    assert answer.status_code == 413 and f"limit of {len(png_bytes) - 1} bytes" in answer.json()["detail"]


def test_operators_set_and_list_a_studios_limits(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    key = succeeds("keys", "create", "--studio", "Acme VFX", "--storage", storage).stdout.split()[0]
    shown = succeeds("studios", "set", "Acme VFX", "--max-jobs", "2", "--rate-per-minute", "120",
                     "--retention-days", "30", "--max-upload-bytes", "2GiB", "--storage", storage).stdout
    assert "max_jobs=2 rate_per_minute=120 retention_days=30.0 max_upload_bytes=2147483648 max_files=default" in shown
    succeeds("studios", "set", "Acme VFX", "--max-jobs", "default", "--max-storage-bytes", "1.5TB", "--storage",
             storage)
    listed = succeeds("studios", "list", "--storage", storage).stdout
    assert "Acme VFX" in listed and "max_jobs=default" in listed and "max_storage_bytes=1500000000000" in listed
    assert "keys=1 shots=0 stored_bytes=0" in listed
    store = open_store(f"sqlite:///{storage.resolve() / 'shotfit.db'}")
    caller = authenticate(store, key)
    store.close()
    assert caller is not None and caller.requests_per_minute == 120 and caller.max_concurrent_jobs is None


@pytest.mark.parametrize(("args", "says"), [
    (["--max-jobs", "0"], "max_jobs must be at least 1 (jobs queued or running at once, per key), not '0' "
                          "(--max-jobs)"),
    (["--rate-per-minute", "-5"], "rate_per_minute must be at least 0"),
    (["--retention-days", "soon"], "retention_days takes a number"),
    (["--max-files", "2.5"], "max_files takes a whole number"),
    (["--max-upload-bytes", "lots"], "(--max-upload-bytes)"),
    (["--retention-days", "nan"], "retention_days must be at least 0"),
    ([], "name at least one setting"),
])
def test_a_bad_studio_setting_is_one_line_naming_the_option(tmp_path: Path, args: list[str], says: str) -> None:
    storage = tmp_path / "data"
    succeeds("keys", "create", "--studio", "Acme VFX", "--storage", storage)
    line = fails("studios", "set", "Acme VFX", *args, "--storage", storage)
    assert says in line and "\n" not in line.strip()


def test_setting_a_studio_that_does_not_exist_changes_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    succeeds("keys", "create", "--studio", "Acme VFX", "--storage", storage)
    assert "no studio named 'Acme'" in fails("studios", "set", "Acme", "--max-jobs", "3", "--storage", storage)
    assert "max_jobs=default" in succeeds("studios", "list", "--storage", storage).stdout


def test_a_store_made_by_the_first_schema_gains_the_new_columns_and_keeps_its_rows(db_url: str) -> None:
    engine = create_engine(engine_url(db_url))
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO studios (id, name, created, retention_days) "
                                "VALUES ('studio_1', 'Old Studio', CURRENT_TIMESTAMP, 3)"))
    engine.dispose()
    store = open_store(db_url)
    try:
        assert "rate_counts" in inspect(store.engine).get_table_names()
        with store.engine.connect() as connection:
            row = connection.execute(text("SELECT name, retention_days, max_concurrent_jobs, requests_per_minute "
                                          "FROM studios")).one()
        assert tuple(row) == ("Old Studio", 3.0, None, None)
    finally:
        store.close()


def test_every_response_carries_the_security_headers(client: TestClient, studios: tuple[Studio, Studio]) -> None:
    page, api, error = client.get("/"), client.get("/v1/me", headers=studios[0].headers), client.get("/v1/me")
    for answer in (page, api, error):
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in answer.headers  # plain HTTP: a browser would ignore it anyway
    assert "<script" in page.text and "<script>" not in page.text and " style=" not in page.text  # no inline code
    docs = client.get("/docs")  # Swagger UI: its own looser policy, still never framed
    assert "https://cdn.jsdelivr.net" in docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]


def test_https_responses_also_say_strict_transport_security(app) -> None:
    with TestClient(app, base_url="https://shotfit.example") as client:
        assert client.get("/v1/health").headers["Strict-Transport-Security"] == "max-age=31536000"
