"""Ledger.

Money (integer fen), double-entry postings, purse order, adjustments and the invariant checks.
"""
