"""``shotfit keys create/list/revoke`` and ``shotfit serve``'s options, through the command itself."""

from __future__ import annotations

from pathlib import Path

from shots import fails, succeeds

from shotfit.service.keys import authenticate
from shotfit.service.store import open_store


def test_a_key_is_printed_once_listed_by_id_and_revoked(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    made = succeeds("keys", "create", "--studio", "Acme VFX", "--storage", storage)
    key = made.stdout.splitlines()[0].strip()
    store = open_store(f"sqlite:///{storage.resolve() / 'shotfit.db'}")
    caller = authenticate(store, key)
    assert caller is not None and caller.studio_name == "Acme VFX"
    listed = succeeds("keys", "list", "--storage", storage).stdout
    assert caller.key_id in listed and "active" in listed and key not in listed
    succeeds("keys", "revoke", caller.key_id, "--storage", storage)
    assert authenticate(store, key) is None and "revoked" in succeeds("keys", "list", "--storage", storage).stdout
    assert f"no active key '{caller.key_id}'" in fails("keys", "revoke", caller.key_id, "--storage", storage)
    store.close()


def test_a_database_url_the_store_cannot_use_is_one_line(tmp_path: Path) -> None:
    line = fails("keys", "list", "--db", "mysql://nobody@localhost/x", "--storage", tmp_path)
    assert "sqlite or postgresql" in line and "(--db)" in line


def test_serve_lists_its_options() -> None:
    text = succeeds("serve", "--help").stdout
    for option in ("--host", "--port", "--db", "--storage", "--ray-address", "--workers"):
        assert option in text
