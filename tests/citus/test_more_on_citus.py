"""Metering on the Citus cluster: the integration tests' own bodies (see test_on_citus.py for
how bodies run here, each in a school of its own). A shower's start places a hold through
``cc_hold_place`` on the school's worker and its end captures it; a device that never comes
back has its hold released by the expiry job, school by school."""

from __future__ import annotations

import pytest

from tests.integration.test_metering_sessions import (
    test_a_device_that_never_comes_back,
    test_start_holds_end_captures_the_ladder_price,
)

pytestmark = pytest.mark.citus

__all__ = [
    "test_a_device_that_never_comes_back",
    "test_start_holds_end_captures_the_ladder_price",
]
