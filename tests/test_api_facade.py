"""shotfit.api lists its names twice (``__all__`` for readers and linters, ``_MODULES`` for lazy loading):
the two must agree, and every name must load."""

from __future__ import annotations

from shotfit import api


def test_every_exported_name_is_loadable_and_listed_once() -> None:
    assert sorted(api.__all__) == sorted(api._WHERE)
    assert len(api.__all__) == len(set(api.__all__))
    missing = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert not missing
