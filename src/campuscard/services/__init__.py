"""Use cases: one verb-named function each; each owns its transaction."""
