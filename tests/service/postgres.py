"""A throw-away PostgreSQL server for the store's tests: Debian's initdb and pg_ctl, in a temporary folder,
as a user that is not root (PostgreSQL refuses root), on a free loopback port, removed afterwards.

Absent binaries skip the PostgreSQL half of the tests with the reason (``scripts/test-services.sh``
installs them; CI runs it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_user() -> list[str]:
    """The command prefix that runs a server program as a non-root user (as root: the 'postgres' user, or 'nobody')."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster; yield its URL (``postgresql://shotfit@127.0.0.1:PORT/shotfit``); stop and remove it."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (scripts/test-services.sh installs Debian's postgresql)")
    root = Path(tempfile.mkdtemp(prefix="sf-pg-", dir="/tmp"))
    data, port, prefix = root / "data", _free_port(), _as_user()
    if prefix:
        shutil.chown(root, user=prefix[2])
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "shotfit", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], **run)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                        "-w", "-t", "60", "start"], **run)
        try:
            subprocess.run([*prefix, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "shotfit",
                            "shotfit"], **run)
            yield f"postgresql://shotfit@127.0.0.1:{port}/shotfit"
        finally:
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           check=False, capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
