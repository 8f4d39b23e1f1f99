"""The job store on SQLite and on a real PostgreSQL: migrations, keys, atomic claims, re-queueing."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, update
from sqlalchemy.exc import IntegrityError

from shotfit.service.claims import claim, requeue, requeue_own, requeue_stale, vouch
from shotfit.service.keys import authenticate, create_key, list_keys, revoke_key
from shotfit.service.store import Base, Job, JobChunk, Shot, Store, Studio, open_store
from shotfit.service.store.models import new_id, now

TABLES = {"studios", "api_keys", "shots", "files", "uploads", "jobs", "job_frames", "idempotency_keys", "webhooks",
          "deliveries", "upload_pieces", "job_chunks", "alembic_version"}


@pytest.fixture
def store(db_url: str) -> Store:
    store = open_store(db_url)
    yield store
    store.close()


def _queued_job(store: Store, studio_id: str) -> str:
    with store.session() as session:
        shot = Shot(id=new_id("shot"), studio_id=studio_id, name="sh010")
        session.add(shot)
        session.flush()
        job = Job(id=new_id("job"), studio_id=studio_id, key_id="key_x", kind="train", shot_id=shot.id,
                  settings={"train.steps": 5}, state="queued", progress={})
        session.add(job)
    return job.id


def test_migrations_make_every_table_and_run_again_harmlessly(db_url: str) -> None:
    first = open_store(db_url)
    again = open_store(db_url)  # a second server starting on the same store
    assert TABLES <= set(inspect(again.engine).get_table_names())
    first.close()
    again.close()


def test_the_migrations_make_exactly_the_models_tables(store: Store) -> None:
    """What Alembic's autogenerate would still find to add or change after the last migration: nothing (a model
    changed without its migration fails here, on SQLite and on PostgreSQL)."""
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_a_render_chunk_is_found_by_its_attempt_and_first_frame(store: Store) -> None:
    """The rows an operator reads to find a chunk's process: one per (job, attempt, first frame); a second row
    for the same chunk is refused."""
    create_key(store, "Acme VFX")
    with store.session() as session:
        studio_id = session.scalars(select(Studio.id)).one()
    job_id = _queued_job(store, studio_id)
    with store.session() as session:
        session.add_all([JobChunk(job_id=job_id, attempt=1, first_frame=1001, frames=[1001, 1002, 1003], pid=4242,
                                  host="render-07"),
                         JobChunk(job_id=job_id, attempt=2, first_frame=1001, frames=[1001], pid=4343, host="render-08")])
    with store.session() as session:
        found = session.get(JobChunk, (job_id, 1, 1001))
        assert (found.frames, found.pid, found.host, found.ended) == ([1001, 1002, 1003], 4242, "render-07", None)
        assert found.started.tzinfo is not None
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(JobChunk(job_id=job_id, attempt=1, first_frame=1001, frames=[1001], pid=1, host="x"))


def test_a_key_is_stored_hashed_works_until_revoked(store: Store) -> None:
    key_id, key = create_key(store, "Acme VFX")
    caller = authenticate(store, key)
    assert caller is not None and caller.studio_name == "Acme VFX" and caller.key_id == key_id
    secret = key.split("_", 2)[2]
    with store.engine.connect() as connection:  # what a copy of the store would give away
        dump = " ".join(str(row) for table in ("api_keys", "studios") for row in
                        connection.exec_driver_sql(f"SELECT * FROM {table}").all())
    assert key_id in dump and secret not in dump
    assert authenticate(store, key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # one character off
    assert authenticate(store, "sfk_nothing_here") is None
    assert revoke_key(store, key_id) and not revoke_key(store, key_id)
    assert authenticate(store, key) is None
    assert [(row[0], row[1]) for row in list_keys(store)] == [(key_id, "Acme VFX")] and list_keys(store)[0][3]


def test_two_claims_of_one_job_at_once_give_it_to_one(store: Store) -> None:
    """Eight threads (as eight servers would) claim the same queued job at once: exactly one wins."""
    create_key(store, "Acme VFX")
    with store.session() as session:
        studio_id = session.scalars(select(Studio.id)).one()
    job_id = _queued_job(store, studio_id)
    won: list[int | None] = []
    barrier = threading.Barrier(8)

    def race(n: int) -> None:
        barrier.wait()
        won.append(claim(store, job_id, f"server{n}/{job_id}"))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(w for w in won if w is not None) == [1] and won.count(None) == 7
    with store.session() as session:
        job = session.get(Job, job_id)
        assert job.state == "running" and job.attempt == 1


def test_a_silent_job_is_queued_again_and_its_old_attempt_cannot_write(store: Store) -> None:
    create_key(store, "Acme VFX")
    with store.session() as session:
        studio_id = session.scalars(select(Studio.id)).one()
    job_id = _queued_job(store, studio_id)
    assert claim(store, job_id, "a:1/x") == 1
    assert requeue_stale(store, 30.0) == []  # fresh heartbeat: left alone
    with store.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat=now() - timedelta(seconds=60)))
    vouch(store, [(job_id, 2)])  # another attempt's vouching does not count
    assert requeue_stale(store, 30.0) == [job_id]
    assert claim(store, job_id, "b:1/x") == 2
    assert not requeue(store, job_id, 1, "late news of attempt 1")  # attempt 2 runs; attempt 1 cannot touch it
    with store.session() as session:
        assert session.get(Job, job_id).state == "running"


def test_a_restarted_server_queues_again_only_its_own_jobs(store: Store) -> None:
    create_key(store, "Acme VFX")
    with store.session() as session:
        studio_id = session.scalars(select(Studio.id)).one()
    mine, theirs = _queued_job(store, studio_id), _queued_job(store, studio_id)
    claim(store, mine, f"host:8000/{mine}")
    claim(store, theirs, f"host:8001/{theirs}")
    assert requeue_own(store, "host:8000") == [mine]
    with store.session() as session:
        assert session.get(Job, mine).state == "queued" and session.get(Job, theirs).state == "running"
