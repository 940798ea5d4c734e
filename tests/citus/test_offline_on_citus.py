"""Offline uploads on the Citus cluster: the offline integration tests' own bodies (see
test_on_citus.py for how bodies run here, each in a school of its own). Reordered, partial and
resent uploads book each record once; an overdraft is owed, blacklists the card above the
school's limit, and the next counter deposit repays it — through ``cc_offline_repay``, a
booking function delegated to the school's worker, whose debt trigger re-checks the card's
blacklist entry there."""

from __future__ import annotations

import pytest

from tests.integration.test_offline_ingest import (
    test_overdraft_is_owed_blacklisted_above_the_limit_and_repaid_by_the_next_top_up,
    test_reordered_partial_and_resent_uploads_book_each_record_once,
)

pytestmark = pytest.mark.citus

__all__ = [
    "test_overdraft_is_owed_blacklisted_above_the_limit_and_repaid_by_the_next_top_up",
    "test_reordered_partial_and_resent_uploads_book_each_record_once",
]
