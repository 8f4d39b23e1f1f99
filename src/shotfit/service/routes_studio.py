"""The calling studio: its limits in force and its usage (read-only; an operator sets limits with
``shotfit studios set``)."""

from __future__ import annotations

from fastapi import APIRouter

from shotfit.service import schemas
from shotfit.service.deps import CallerDep, SettingsDep, StoreDep, errors
from shotfit.service.studios import studio_view

router = APIRouter(prefix="/v1", responses=errors(400, 401, 429))


@router.get("/studio", response_model=schemas.StudioInfo)
def get_studio(caller: CallerDep, store: StoreDep, settings: SettingsDep) -> schemas.StudioInfo:
    """This key's limits (jobs at once, requests a minute) and its studio's (file size, files, storage, retention),
    with what is used of each."""
    return studio_view(store, settings, caller)
