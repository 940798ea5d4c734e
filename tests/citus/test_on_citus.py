"""The integration tests of payments (card and code), reversals and refunds, cards, payment codes,
phones and their confirmations, issuing and card production, money in and out, the counter,
holds, settlement (clearing, statements, payouts, reconciliation, reports, the dashboard),
merchants and terminals, people and visitors' cards, run again on a real Citus cluster.

The bodies are the single-node tests themselves, imported: here ``db_url`` (tests/citus/conftest.py)
is a CampusCard database that ``campuscard db citus`` distributed by school, shared by the tests of
one process, each in a school of its own. So the same code, the same database functions and the
same assertions pass on one node and on the cluster. A body that counts or reads rows to check its
own work names its school (``WHERE school_id = …``): the earlier tests' schools are in the same
database here.
"""

from __future__ import annotations

import pytest

from tests.integration.test_access_lists import (
    test_visitor_card_works_in_its_window_and_expires_by_itself,
)
from tests.integration.test_auth import (
    test_repeated_failures_lock_the_account_and_the_lock_is_audited,
)
from tests.integration.test_auto_topup import test_tops_up_to_target_once_per_fall
from tests.integration.test_bank_link import (
    test_load_credits_the_card_once,
    test_timeout_after_the_bank_debited_is_reversed,
)
from tests.integration.test_bills import test_partial_payment_from_the_card_with_numbered_receipts
from tests.integration.test_bills_api import (
    test_the_finance_office_sets_up_and_handles_bills_over_the_api,
)
from tests.integration.test_card_applications import (
    test_a_card_fee_waits_for_payment_then_issues_the_code,
    test_counter_applications_go_to_the_production_queue_and_export,
    test_verified_guardian_is_approved_and_gets_a_pickup_code_by_sms,
)
from tests.integration.test_card_life import (
    test_blacklist_deltas_lost_in_unblocked_out_replaced_never_leaves,
    test_cancel_pays_out_balance_and_deposit_and_closes_account,
    test_each_transition_and_refusal,
)
from tests.integration.test_card_payments import (
    test_limits_per_transaction_and_per_day,
    test_payment_debits_subsidy_first_credits_merchant_and_answers_a_receipt,
    test_pin_missing_wrong_and_locked,
    test_retry_replays_and_new_payload_under_same_id_is_409,
)
from tests.integration.test_counter import (
    test_day_at_the_counter_balances_against_the_drawer,
    test_zeroing_pays_cash_and_returns_subsidy,
)
from tests.integration.test_credit_lines import (
    test_credit_is_used_for_purchases_repaid_first_and_stopped_when_overdue,
)
from tests.integration.test_holds import (
    test_capture_the_whole_hold_of_the_whole_balance,
)
from tests.integration.test_kiosk_pages import (
    test_pickup_page_issues_the_card_and_self_service_shows_the_balance,
)
from tests.integration.test_merchants_terminals import (
    test_heartbeat_online_status_disable_and_admin_rotation,
    test_merchant_applies_admin_approves_then_terminal_takes_payments,
)
from tests.integration.test_moneyflows_pages import test_student_top_up_page
from tests.integration.test_online_topup import (
    test_paid_order_is_credited_once_with_duplicate_callbacks,
)
from tests.integration.test_paycode_api import (
    test_bind_generate_pay_rebind_and_unbind_over_http,
)
from tests.integration.test_paycode_payments import (
    test_above_the_pin_threshold_the_pin_is_asked_at_the_till,
    test_above_the_pin_threshold_the_student_confirms_on_the_phone,
    test_the_card_limits_apply_to_codes,
    test_the_till_shows_the_amount_on_its_display_and_paying_clears_it,
)
from tests.integration.test_people_and_tenancy import (
    test_create_edit_and_find_a_person_with_guardian,
)
from tests.integration.test_reports import (
    test_daily_and_consumption_reports_with_exports,
)
from tests.integration.test_reversals_refunds import (
    test_partial_refunds_go_back_to_purses_and_never_exceed_the_payment,
    test_reversal_after_payment_returns_money_to_the_same_purses,
)
from tests.integration.test_settlement_api import (
    test_close_day_statement_and_payout_file,
)
from tests.integration.test_settlement_close import (
    test_day_cleared_twice_has_identical_figures_and_one_settlement,
)
from tests.integration.test_settlement_real_payments import (
    test_pos_payments_and_a_reversal_clear_per_terminal,
)
from tests.integration.test_student_import import (
    test_a_corrupted_upload_is_caught_by_the_digest_and_retried,
    test_reimport_updates_changed_rows_and_adds_new_ones,
)
from tests.integration.test_subsidies import test_expiry_claws_back_the_unspent_part_exactly
from tests.integration.test_web_parent import (
    test_parent_chooses_a_child_and_sees_only_linked_children,
)
from tests.integration.test_web_paycode import test_a_display_is_only_for_the_merchant_of_the_till
from tests.integration.test_web_pos import (
    test_manager_binds_the_till_and_the_cashier_charges_a_card,
)
from tests.integration.test_web_settlement import (
    test_settlement_and_reconciliation_pages,
)

pytestmark = pytest.mark.citus

__all__ = [
    "test_a_card_fee_waits_for_payment_then_issues_the_code",
    "test_a_corrupted_upload_is_caught_by_the_digest_and_retried",
    "test_a_display_is_only_for_the_merchant_of_the_till",
    "test_above_the_pin_threshold_the_pin_is_asked_at_the_till",
    "test_above_the_pin_threshold_the_student_confirms_on_the_phone",
    "test_bind_generate_pay_rebind_and_unbind_over_http",
    "test_blacklist_deltas_lost_in_unblocked_out_replaced_never_leaves",
    "test_cancel_pays_out_balance_and_deposit_and_closes_account",
    "test_capture_the_whole_hold_of_the_whole_balance",
    "test_close_day_statement_and_payout_file",
    "test_counter_applications_go_to_the_production_queue_and_export",
    "test_create_edit_and_find_a_person_with_guardian",
    "test_credit_is_used_for_purchases_repaid_first_and_stopped_when_overdue",
    "test_daily_and_consumption_reports_with_exports",
    "test_day_at_the_counter_balances_against_the_drawer",
    "test_day_cleared_twice_has_identical_figures_and_one_settlement",
    "test_each_transition_and_refusal",
    "test_expiry_claws_back_the_unspent_part_exactly",
    "test_heartbeat_online_status_disable_and_admin_rotation",
    "test_limits_per_transaction_and_per_day",
    "test_load_credits_the_card_once",
    "test_manager_binds_the_till_and_the_cashier_charges_a_card",
    "test_merchant_applies_admin_approves_then_terminal_takes_payments",
    "test_paid_order_is_credited_once_with_duplicate_callbacks",
    "test_parent_chooses_a_child_and_sees_only_linked_children",
    "test_partial_payment_from_the_card_with_numbered_receipts",
    "test_partial_refunds_go_back_to_purses_and_never_exceed_the_payment",
    "test_payment_debits_subsidy_first_credits_merchant_and_answers_a_receipt",
    "test_pickup_page_issues_the_card_and_self_service_shows_the_balance",
    "test_pin_missing_wrong_and_locked",
    "test_pos_payments_and_a_reversal_clear_per_terminal",
    "test_reimport_updates_changed_rows_and_adds_new_ones",
    "test_repeated_failures_lock_the_account_and_the_lock_is_audited",
    "test_retry_replays_and_new_payload_under_same_id_is_409",
    "test_reversal_after_payment_returns_money_to_the_same_purses",
    "test_settlement_and_reconciliation_pages",
    "test_student_top_up_page",
    "test_the_card_limits_apply_to_codes",
    "test_the_finance_office_sets_up_and_handles_bills_over_the_api",
    "test_the_till_shows_the_amount_on_its_display_and_paying_clears_it",
    "test_timeout_after_the_bank_debited_is_reversed",
    "test_tops_up_to_target_once_per_fall",
    "test_verified_guardian_is_approved_and_gets_a_pickup_code_by_sms",
    "test_visitor_card_works_in_its_window_and_expires_by_itself",
    "test_zeroing_pays_cash_and_returns_subsidy",
]
