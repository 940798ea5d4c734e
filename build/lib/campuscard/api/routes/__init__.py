"""HTTP routes, one module per audience or area."""
