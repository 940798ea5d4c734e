"""Worker tasks: outbox delivery and periodic jobs, run by ``campuscard worker``."""
