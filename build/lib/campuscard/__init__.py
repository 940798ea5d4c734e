"""CampusCard: a campus one-card platform."""

__version__ = "0.1.0"
