"""Outside parties (payment provider, bank, SMS) behind adapters, each with a simulator."""
