"""The suite's one-process group holds: under ``make test`` (pytest-xdist, ``--dist loadgroup``) every module
that starts a local Ray cluster runs in one worker (tests/conftest.py's ONE_PROCESS). With pytest 9.2 and
pytest-xdist 3.8 the group mark was silently dropped (pytest-xdist#1386): the service's tests ran on two
workers, each with a cluster of its own, and timed checks (a cancel within 10 s) ran over."""

import os

import pytest


def test_a_ray_module_runs_in_the_one_process_group(request: pytest.FixtureRequest) -> None:
    # on a worker, xdist sets option.loadgroup when the run shares tests out with --dist loadgroup
    if "PYTEST_XDIST_WORKER" not in os.environ or not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest-xdist's --dist loadgroup (make test)")
    # xdist's loadgroup scheduler reads a test's group from the "@GROUP" its node id ends with
    assert request.node.nodeid.endswith("@ray"), f"{request.node.nodeid} is in no xdist group: see pytest-xdist#1386"
