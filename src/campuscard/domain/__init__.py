"""Pure rules with no I/O: money, ledger legs, card states, limits, payment codes."""
