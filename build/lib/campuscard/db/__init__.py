"""Database: embedded server, connection pool, migrations, locking helpers, SQL functions."""
