"""Escrowed orders from merchants' online shops: paid into ledger holds, released to the
merchant on conditions, refunded at deadlines, disputes decided by two people (docs/orders.md)."""
