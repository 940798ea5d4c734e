"""Issuing.

Student-record imports, card applications and fees, pickup codes, kiosks and the card production
queue.
"""
