"""Metering, monitoring, spending analysis and order books on the Citus cluster: the integration
tests' own bodies (see test_on_citus.py for how bodies run here, each in a school of its own). A shower's start places
a hold through ``cc_hold_place`` on the school's worker and its end captures it; a device that
never comes back has its hold released by the expiry job, school by school. The monitoring scan
reads a school's new payments and judges each against the student's history, balance and
parents' own thresholds; the daily run finds days without a canteen meal; a counsellor's risk
tiers and drill-down read the alerts of their own classes. A cardholder's months are read by
category from their purse's postings (booked in past months with the clock the workers see)
and the pace reminder goes out once. A personal reader pays its own card's order into a hold
and refuses other cards; a paid order's money is held and the buyer releases it in parts.

Every body here shares this process' database with the other citus tests: none may leave the
ledger in a state ``check_ledger`` refuses (the dispute body breaks an order on purpose to
show the check catches it, so it stays on one node)."""

from __future__ import annotations

import pytest

from tests.integration.test_metering_sessions import (
    test_a_device_that_never_comes_back,
    test_start_holds_end_captures_the_ladder_price,
)
from tests.integration.test_monitoring_events import (
    test_daily_pass_no_canteen_meal_for_days_while_the_card_is_used,
    test_low_balance_once_per_fall_and_the_parents_own_thresholds,
)
from tests.integration.test_monitoring_supervision import (
    test_counsellor_sees_tiers_of_own_classes_and_drill_down_is_audited,
)
from tests.integration.test_orders_checkout import (
    test_a_personal_reader_pays_its_own_cards_orders_and_refuses_others,
)
from tests.integration.test_orders_escrow import (
    test_paying_holds_the_money_and_the_buyer_releases_it_in_parts,
)
from tests.integration.test_spending_analysis import (
    test_months_by_category_the_pace_and_one_reminder_a_month,
)

pytestmark = pytest.mark.citus

__all__ = [
    "test_a_device_that_never_comes_back",
    "test_a_personal_reader_pays_its_own_cards_orders_and_refuses_others",
    "test_counsellor_sees_tiers_of_own_classes_and_drill_down_is_audited",
    "test_daily_pass_no_canteen_meal_for_days_while_the_card_is_used",
    "test_low_balance_once_per_fall_and_the_parents_own_thresholds",
    "test_months_by_category_the_pace_and_one_reminder_a_month",
    "test_paying_holds_the_money_and_the_buyer_releases_it_in_parts",
    "test_start_holds_end_captures_the_ladder_price",
]
