"""The built images, run as SageMaker and a studio would run them.

``make image-test`` builds them (docker/build.sh) and names them in ``$SHOTFIT_TEST_IMAGE`` (the sagemaker
target) and ``$SHOTFIT_TEST_SERVICE_IMAGE`` (the service target); without those variables these tests
skip. Containers run with no network, through Docker when its engine answers and podman otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from engines import Engine, find_engine

IMAGE_VARIABLE = "SHOTFIT_TEST_IMAGE"
SERVICE_IMAGE_VARIABLE = "SHOTFIT_TEST_SERVICE_IMAGE"


def image_named_by(variable: str, request: pytest.FixtureRequest) -> str:
    """The image ``$variable`` names (skipping without it, before any engine is looked for)."""
    image = os.environ.get(variable)
    if not image:
        pytest.skip(f"no image to test: ${variable} is not set (`make image-test` builds the images and sets it)")
    engine: Engine = request.getfixturevalue("engine")
    if engine("image", "inspect", image, check=False).returncode != 0:
        pytest.fail(f"${variable} names {image}, which {engine.command} does not have")
    return image


@pytest.fixture(scope="session")
def engine() -> Engine:
    return find_engine()


@pytest.fixture(scope="session")
def sagemaker_image(request: pytest.FixtureRequest) -> str:
    return image_named_by(IMAGE_VARIABLE, request)


@pytest.fixture(scope="session")
def service_image(request: pytest.FixtureRequest) -> str:
    return image_named_by(SERVICE_IMAGE_VARIABLE, request)


@pytest.fixture
def container_name(engine: Engine) -> Iterator[str]:
    """A fresh container name; the container is removed after the test whatever happened."""
    name = f"shotfit-test-{uuid.uuid4().hex[:12]}"
    yield name
    engine.remove(name)
