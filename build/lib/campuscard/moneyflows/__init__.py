"""Money in and out.

Counter, provider orders and online top-ups, bank link, automatic top-up, subsidies, leaving
school.
"""
