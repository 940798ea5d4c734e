"""The pool hands connections back without resetting the session (db/pool.py, one round trip
less per request). That is only sound while no code leaves session state on a pooled
connection; this test keeps it so by reading the source."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "campuscard"


def _python_sources() -> dict[str, str]:
    return {str(p.relative_to(SRC)): p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")}


def test_no_session_level_settings() -> None:
    # a statement that starts with SET must be SET LOCAL / SET CONSTRAINTS / SET TRANSACTION
    statement_set = re.compile(r"""["']\s*SET\s+(?!LOCAL\b|CONSTRAINTS\b|TRANSACTION\b)""")
    session_config = re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I)
    offenders = [
        name
        for name, text in _python_sources().items()
        if statement_set.search(text) or session_config.search(text)
    ]
    assert offenders == []


def test_session_advisory_locks_only_in_migrations_and_released() -> None:
    users = {
        name: text
        for name, text in _python_sources().items()
        if re.search(r"pg_(try_)?advisory_lock\(", text)
    }
    assert set(users) == {"db/migrate.py"}
    assert re.search(
        r"finally:\s+await conn\.execute\(\"SELECT pg_advisory_unlock", users["db/migrate.py"]
    )


def test_listen_is_undone() -> None:
    for name, text in _python_sources().items():
        if "add_listener(" in text:
            assert "remove_listener(" in text, name
