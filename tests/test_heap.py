"""Server processes freeze their start-up heap; apps built for tests do not."""

import gc
from collections.abc import Iterator

import pytest

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.heap import YOUNG_GENERATION_THRESHOLD


@pytest.fixture
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_a_server_app_freezes_its_start_up_objects(
    settings: Settings, unfrozen: None
) -> None:
    app = create_app(settings, server=True)
    async with app.router.lifespan_context(app):
        # Everything built until the app started, the app's own state included, is out
        # of the cyclic collector's reach: a full collection no longer walks it.
        assert gc.get_freeze_count() > 10_000
        assert not any(tracked is app.state.engine for tracked in gc.get_objects())
        # And the young generation is collected every 20,000 allocations, not 700.
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD


async def test_an_app_built_in_a_test_process_leaves_the_heap_alone(
    settings: Settings, unfrozen: None
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold()[0] != YOUNG_GENERATION_THRESHOLD
