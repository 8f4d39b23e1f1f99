"""``shotfit serve`` (the HTTP service), ``shotfit keys create/revoke/list`` (its API keys) and ``shotfit studios
set/list`` (each studio's limits and retention).

``serve`` owns its process as every entry point does: the environment Ray reads, Ray itself (started
locally, or joined with ``--ray-address``), one torch thread in the server (jobs run in Ray workers,
which set their own), and the signal handlers (Ctrl-C or SIGTERM stop it cleanly: uvicorn finishes
the requests in hand, Ray is shut down; jobs that were running resume on the next start).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shotfit.cli.app import app, user_errors
from shotfit.cli.display import console
from shotfit.errors import ShotfitError
from shotfit.service.settings import ServiceSettings

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service (shown once; stored hashed).")
app.add_typer(keys_app, name="keys")
studios_app = typer.Typer(no_args_is_help=True, help="Studios of the HTTP service: their limits and retention.")
app.add_typer(studios_app, name="studios")

StorageOpt = Annotated[str, typer.Option("--storage", envvar="SHOTFIT_STORAGE",
                                         help="Folder for every studio's files (and the default SQLite store), or an "
                                         "fsspec URL (s3://BUCKET/PREFIX) that keeps the files instead.")]
ScratchOpt = Annotated[Optional[Path], typer.Option(
    "--scratch", envvar="SHOTFIT_SCRATCH", help="With --storage a URL: the local folder for the default SQLite "
    "store, uploads in flight and jobs' working copies (default: shotfit-data).")]
DbOpt = Annotated[Optional[str], typer.Option(
    "--db", envvar="SHOTFIT_DB", help="The job store: sqlite:///PATH (default: STORAGE/shotfit.db) or "
    "postgresql://USER:PASSWORD@HOST/DB.")]
DEFAULT_STORAGE = "shotfit-data"

# SQLAlchemy and Alembic load when a service command runs, not with every command (start-up time)
if TYPE_CHECKING:
    from shotfit.service.store import Store
    from shotfit.service.studios import StudioRow


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    db: DbOpt = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    scratch: ScratchOpt = None,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Run jobs on this Ray cluster (ray://HOST:10001, or auto); default: a local Ray.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Jobs this server runs at once (0: API only; "
                                         "another server runs the jobs).")] = 1,
    cpus_per_job: Annotated[int, typer.Option("--cpus-per-job", min=1, help="CPUs (and torch threads) per job.")] = 1,
    gpus_per_job: Annotated[float, typer.Option("--gpus-per-job", min=0, help="GPUs per job.")] = 0.0,
    stale_s: Annotated[float, typer.Option("--stale-after", min=1, help="Seconds without a heartbeat after which "
                                           "a running job is taken as lost and resumes elsewhere.")] = 30.0,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", envvar="SHOTFIT_TRACKING_URI",
                            help="MLflow store for training jobs (default: sqlite in the storage folder).")] = None,
    retention_days: Annotated[Optional[float], typer.Option(
        "--retention-days", min=0, help="Delete uploads and results this many days old (a studio's own setting "
        "wins); default: keep them.")] = None,
    ssl_certfile: Annotated[Optional[Path], typer.Option("--ssl-certfile", help="Serve HTTPS with this certificate "
                                                         "(PEM); default: plain HTTP, for behind a TLS proxy.")] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option("--ssl-keyfile", help="The certificate's private key (PEM).")]
    = None,
) -> None:
    """Run the HTTP service: the API under /v1, the web page at /, jobs on Ray."""
    import uvicorn  # start-up time: uvicorn, FastAPI and Ray take seconds to import; other commands need not wait

    # start-up time, as uvicorn above
    from shotfit.search.cluster import quiet_ray_environment, ray_session
    from shotfit.service.app import create_app
    from shotfit.service.dispatch import RayRunner, server_id

    local, files = split_storage(storage, scratch)
    settings = ServiceSettings(storage=local.resolve(), files=files, db=db, ray_address=ray_address, workers=workers,
                               cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job, stale_s=stale_s,
                               tracking_uri=tracking_uri, server=server_id(port),
                               retention_days=retention_days)
    with user_errors(), contextlib.ExitStack() as stack:
        local.mkdir(parents=True, exist_ok=True)
        if files is not None:
            from shotfit.service.storage import check_files  # start-up time, as uvicorn above

            check_files(files)
        _use_one_thread()
        quiet_ray_environment()
        runner = None
        if workers:
            stack.enter_context(ray_session(settings.storage, ray_address, parameter="ray_address"))
            runner = RayRunner(settings)
        signal.signal(signal.SIGTERM, _stop)  # after Ray, which installs its own
        application = create_app(settings, runner, started=_freeze_startup_objects)
        scheme = "https" if ssl_certfile else "http"
        console.print(f"shotfit serving on {scheme}://{host}:{port} (store: {_safe_url(settings.db_url)}, "
                      f"files: {files or settings.storage})", markup=False, highlight=False, soft_wrap=True)
        uvicorn.run(application, host=host, port=port, log_level="warning", proxy_headers=True,
                    ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                    ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)


def _stop(signum: int, frame: object) -> None:
    """SIGTERM, once uvicorn has shut down gracefully (it raises the signal again): leave through every
    ``finally`` (Ray is shut down) with status 0."""
    raise SystemExit(0)


def _freeze_startup_objects() -> None:
    """Move everything made at start-up (Ray, FastAPI, SQLAlchemy, and MLflow and its pandas, imported when the
    workers are warmed: about 400 000 objects) out of the garbage collector's reach, once the app has started.
    Without it each full collection walks them all, a pause of 0.2-0.3 s on a 2-core machine that every request
    in flight waits out: the tail of the status-poll latency (bench/service.py). Frozen before the app's own
    start-up (about 150 000 objects then), full collections still took 0.2-0.3 s."""
    gc.collect()
    gc.freeze()


def _use_one_thread() -> None:
    """The server process runs no network: one thread keeps it from fighting the workers for cores."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _safe_url(url: str) -> str:
    """A store URL for the console, without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, _, where = rest.rpartition("@")
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{where}"
    return url


def split_storage(storage: str, scratch: Path | None) -> tuple[Path, str | None]:
    """``--storage`` and ``--scratch`` as (the local folder, the files' store URL or None): a folder is both the
    files' home and the local folder; a URL keeps the files, and the local folder is ``--scratch``."""
    if "://" in storage and not storage.startswith("file://"):
        return (scratch or Path(DEFAULT_STORAGE)), storage.rstrip("/")
    folder = Path(storage.removeprefix("file://"))
    if scratch is not None and scratch.resolve() != folder.resolve():
        raise ShotfitError("a scratch folder is for a storage URL; with a storage folder, the folder is the scratch",
                           parameter="scratch")
    return folder, None


def _store(db: str | None, storage: str, scratch: Path | None = None) -> Store:
    from shotfit.service.store import open_store  # start-up time: see above

    local, _ = split_storage(storage, scratch)
    return open_store(ServiceSettings(storage=local.resolve(), db=db).db_url)


@keys_app.command("create")
def keys_create(studio: Annotated[str, typer.Option("--studio", help="The studio the key belongs to (created when "
                                                    "new).")],
                db: DbOpt = None, storage: StorageOpt = DEFAULT_STORAGE, scratch: ScratchOpt = None) -> None:
    """Make an API key for a studio and print it once (only its hash is kept)."""
    from shotfit.service.keys import create_key  # start-up time: see above

    with user_errors():
        store = _store(db, storage, scratch)
        try:
            key_id, key = create_key(store, studio)
        finally:
            store.close()
    console.print(key, markup=False, highlight=False, soft_wrap=True)
    console.print(f"key id {key_id} for studio {studio!r}: keep the key now, it is not shown again", style="dim",
                  markup=False, highlight=False, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...), as `shotfit keys list` shows.")],
                db: DbOpt = None, storage: StorageOpt = DEFAULT_STORAGE, scratch: ScratchOpt = None) -> None:
    """Revoke a key at once."""
    from shotfit.service.keys import revoke_key  # start-up time: see above

    with user_errors():
        store = _store(db, storage, scratch)
        try:
            if not revoke_key(store, key_id):
                raise ShotfitError(f"no active key {key_id!r}")
        finally:
            store.close()
    console.print(f"revoked {key_id}", markup=False, highlight=False)


@keys_app.command("list")
def keys_list(db: DbOpt = None, storage: StorageOpt = DEFAULT_STORAGE, scratch: ScratchOpt = None) -> None:
    """Every key: id, studio, created, revoked."""
    from shotfit.service.keys import list_keys  # start-up time: see above

    with user_errors():
        store = _store(db, storage, scratch)
        try:
            rows = list_keys(store)
        finally:
            store.close()
    for key_id, studio, created, revoked in rows:
        console.print(f"{key_id}\t{studio}\t{created}\t{'revoked ' + revoked if revoked else 'active'}",
                      markup=False, highlight=False, soft_wrap=True)


def _setting_option(name: str, what: str) -> typer.Option:  # type: ignore[valid-type]
    return typer.Option(f"--{name.replace('_', '-')}", help=f"{what}; 'default': the server's.")


@studios_app.command("set")
def studios_set(
    studio: Annotated[str, typer.Argument(help="The studio's name, as given to `shotfit keys create --studio`.")],
    max_jobs: Annotated[Optional[str], _setting_option("max_jobs", "Jobs queued or running at once, per key")] = None,
    rate_per_minute: Annotated[Optional[str], _setting_option(
        "rate_per_minute", "Requests a minute, per key (0: unlimited)")] = None,
    retention_days: Annotated[Optional[str], _setting_option(
        "retention_days", "Delete uploads and results this many days old")] = None,
    max_upload_bytes: Annotated[Optional[str], _setting_option(
        "max_upload_bytes", "Largest file (bytes, or with a unit: 2GiB, 500MB)")] = None,
    max_files: Annotated[Optional[str], _setting_option("max_files", "Files per shot and role")] = None,
    max_storage_bytes: Annotated[Optional[str], _setting_option(
        "max_storage_bytes", "All the studio's files together (bytes, or with a unit)")] = None,
    db: DbOpt = None, storage: StorageOpt = DEFAULT_STORAGE,
) -> None:
    """Set a studio's limits and retention (every server on the store applies them at the next request)."""
    from shotfit.service.studios import parse_setting, set_limits  # start-up time: see above

    given = {"max_jobs": max_jobs, "rate_per_minute": rate_per_minute, "retention_days": retention_days,
             "max_upload_bytes": max_upload_bytes, "max_files": max_files, "max_storage_bytes": max_storage_bytes}
    with user_errors():
        changes = {name: parse_setting(name, text) for name, text in given.items() if text is not None}
        if not changes:
            raise ShotfitError("name at least one setting to change; `shotfit studios set --help` lists them")
        store = _store(db, storage)
        try:
            row = set_limits(store, studio, changes)
        finally:
            store.close()
    _print_studios([row])


@studios_app.command("list")
def studios_list(db: DbOpt = None, storage: StorageOpt = DEFAULT_STORAGE) -> None:
    """Every studio: its own settings (blank: the server's default), active keys, shots and bytes stored."""
    from shotfit.service.studios import list_studios  # start-up time: see above

    with user_errors():
        store = _store(db, storage)
        try:
            rows = list_studios(store)
        finally:
            store.close()
    _print_studios(rows)


def _print_studios(rows: list[StudioRow]) -> None:
    for row in rows:
        settings = " ".join(f"{name}={'default' if value is None else value}"
                            for name, value in row.settings.items())
        console.print(f"{row.name}\t{settings}\tkeys={row.active_keys} shots={row.shots} "
                      f"stored_bytes={row.storage_bytes}", markup=False, highlight=False, soft_wrap=True)
