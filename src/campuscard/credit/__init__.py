"""Credit lines: spending below zero down to a limit, repaid first by the next top-up, overdue
credit stopped and told to monitoring (docs/credit.md)."""
