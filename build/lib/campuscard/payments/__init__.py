"""Payments at merchants.

Merchants and terminals, card and code payments, refunds and reversals, limits and PINs, the
customer display.
"""
