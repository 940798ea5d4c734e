"""Monthly analysis for the cardholder (消费管理): income against spending by category, this
month against earlier ones, and an opt-in reminder when the month runs ahead of the usual pace
(docs/spending.md)."""
