"""Settlement.

End-of-day clearing, statements and payouts, reconciliation, reports and the console dashboard.
"""
