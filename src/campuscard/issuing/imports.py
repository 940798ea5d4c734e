"""Teachers import student records (seed 004 step 1): all-or-nothing, every bad row reported,
the file version stored, and a canonical echo of what was stored sent back.

Rows go into a temporary staging table with COPY and are applied with set-based SQL, so a
50,000-row file takes seconds (bench/import_students.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.issuing import import_rules as rules
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed

IMPORT_LOCK = 740_001  # advisory lock class: one import per school at a time


@dataclass(frozen=True)
class ImportResult:
    import_id: int
    version: int
    sha256: str
    rows: int
    added: int
    updated: int
    unchanged: int
    canonical: list[str]
    canonical_sha256: str
    replayed: bool
    notes: list[rules.Note] = field(default_factory=list)  # what was done to read the file

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "version": self.version,
            "sha256": self.sha256,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "canonical": self.canonical,
            "canonical_sha256": self.canonical_sha256,
            "replayed": self.replayed,
            "notes": [n.as_dict() for n in self.notes],
        }


def _bad_rows(errors: list[rules.RowError]) -> ValidationFailed:
    return rules.refuse_rows(errors, what="the file", outcome="imported")


async def _school_names(conn: Conn, school_id: int) -> rules.SchoolNames:
    school = await conn.fetchrow(
        """SELECT s.code, s.name, s.name_en, p.code AS p_code, p.name AS p_name,
                  p.name_en AS p_name_en
             FROM schools s JOIN provinces p ON p.id = s.province_id WHERE s.id = $1""",
        school_id,
    )
    if school is None:
        raise NotFound("school not found", field="school")
    known: set[str] = set()
    for p in await conn.fetch("SELECT code, name, name_en FROM provinces"):
        known.update(v for v in (p["code"], p["name"], p["name_en"]) if v)
    return rules.SchoolNames(
        known_provinces=frozenset(known),
        province=frozenset(
            v for v in (school["p_code"], school["p_name"], school["p_name_en"]) if v
        ),
        school=frozenset(v for v in (school["code"], school["name"], school["name_en"]) if v),
    )


async def _check_against_database(conn: Conn, school_id: int) -> list[rules.RowError]:
    """Rows that clash with records already in the database (staging table is filled)."""
    errors: list[rules.RowError] = []
    for r in await conn.fetch(
        """SELECT s.line, p.kind FROM import_staging s
             JOIN persons p ON p.school_id = $1 AND p.number = s.number
            WHERE p.kind <> 'student' ORDER BY s.line""",
        school_id,
    ):
        errors.append(
            rules.RowError(
                r["line"],
                "number",
                f"this number belongs to a {r['kind']}, not a student",
                "NOT_A_STUDENT",
            )
        )
    for r in await conn.fetch(
        """SELECT s.line, p.number AS holder FROM import_staging s
             JOIN student_records sr ON sr.school_id = $1 AND sr.ic_card_no = s.card_no
             JOIN persons p ON p.school_id = sr.school_id AND p.id = sr.person_id
            WHERE p.number <> s.number
           UNION
           SELECT s.line, p.number FROM import_staging s
             JOIN cards c ON c.school_id = $1 AND c.number = s.card_no
                         AND c.state NOT IN ('cancelled', 'replaced', 'expired')
             JOIN persons p ON p.school_id = c.school_id AND p.id = c.person_id
            WHERE p.number <> s.number
           ORDER BY 1""",
        school_id,
    ):
        errors.append(
            rules.RowError(
                r["line"],
                "card_no",
                f"this IC card number already belongs to student {r['holder']}",
                "CARD_TAKEN",
                {"holder": r["holder"]},
            )
        )
    return errors


@owns_transaction
async def do_import_students(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    frame: bytes,
    filename: str,
) -> ImportResult:
    """Check the frame, validate every row, then apply all of them or none."""
    actor.require("teacher", "card_center", school_id=school_id)
    filename = (filename or "students.xlsx").strip()[:200] or "students.xlsx"
    payload, digest = rules.open_frame(frame)
    rows, errors, notes = await asyncio.to_thread(rules.parse_file, payload)  # CPU: off the loop
    names = await _school_names(tx, school_id)
    errors += rules.check_school(rows, names)
    await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", IMPORT_LOCK, school_id)
    await tx.execute(
        """CREATE TEMP TABLE import_staging (
               line int NOT NULL, number text NOT NULL, name text NOT NULL,
               class_name text NOT NULL, card_no text
           ) ON COMMIT DROP"""
    )
    await tx.copy_records_to_table(
        "import_staging",
        records=[(r.row, r.number, r.name, r.class_name, r.card_no) for r in rows],
        columns=["line", "number", "name", "class_name", "card_no"],
    )
    errors += await _check_against_database(tx, school_id)
    if errors:
        raise _bad_rows(errors)
    await tx.execute("CREATE INDEX ON import_staging(number)")
    await tx.execute("ANALYZE import_staging")
    counts = await tx.fetchrow(
        """SELECT count(*) FILTER (WHERE p.id IS NULL) AS added,
                  count(*) FILTER (WHERE p.id IS NOT NULL AND (
                      p.name <> s.name OR c.name IS DISTINCT FROM s.class_name
                      OR (s.card_no IS NOT NULL
                          AND sr.ic_card_no IS DISTINCT FROM s.card_no))) AS updated
             FROM import_staging s
             LEFT JOIN persons p ON p.school_id = $1 AND p.number = s.number
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN student_records sr ON sr.school_id = p.school_id AND sr.person_id = p.id""",
        school_id,
    )
    assert counts is not None  # an aggregate always answers one row
    added, updated = int(counts["added"]), int(counts["updated"])
    await tx.execute(
        """INSERT INTO classes(school_id, name)
           SELECT DISTINCT $1::int, class_name FROM import_staging
           ON CONFLICT (school_id, name) DO NOTHING""",
        school_id,
    )
    await tx.execute(
        """INSERT INTO persons(school_id, kind, number, name, class_id)
           SELECT $1, 'student', s.number, s.name, c.id
             FROM import_staging s JOIN classes c ON c.school_id = $1 AND c.name = s.class_name
           ON CONFLICT (school_id, number) DO UPDATE
              SET name = EXCLUDED.name, class_id = EXCLUDED.class_id,
                  updated_at = EXCLUDED.updated_at
            WHERE persons.name <> EXCLUDED.name
               OR persons.class_id IS DISTINCT FROM EXCLUDED.class_id""",
        school_id,
    )
    latest = await tx.fetchrow(
        """SELECT id, version, sha256 FROM student_import_files WHERE school_id = $1
            ORDER BY version DESC LIMIT 1""",
        school_id,
    )
    replayed = latest is not None and latest["sha256"] == digest
    if replayed:
        assert latest is not None
        file_id, version = int(latest["id"]), int(latest["version"])
    else:
        file_id = 0  # set below, once the canonical echo is known
        version = (int(latest["version"]) if latest else 0) + 1
    # a blank IC卡号 keeps the number on record; a given one replaces it
    await tx.execute(
        """INSERT INTO student_records(person_id, school_id, ic_card_no, imported_by)
           SELECT p.id, $1, s.card_no, $2
             FROM import_staging s JOIN persons p ON p.school_id = $1 AND p.number = s.number
           ON CONFLICT (school_id, person_id) DO UPDATE
              SET ic_card_no = coalesce(EXCLUDED.ic_card_no, student_records.ic_card_no),
                  imported_by = EXCLUDED.imported_by, updated_at = EXCLUDED.updated_at""",
        school_id,
        actor.user_id,
    )
    # the echo is read back from what is now stored, in the file's row order
    stored = await tx.fetch(
        """SELECT s.line, p.number, p.name, c.name AS class_name, sr.ic_card_no
             FROM import_staging s
             JOIN persons p ON p.school_id = $1 AND p.number = s.number
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN student_records sr ON sr.school_id = p.school_id AND sr.person_id = p.id
            ORDER BY s.line""",
        school_id,
    )
    by_line = {r.row: r for r in rows}
    canonical = [
        rules.canonical_line(
            by_line[s["line"]].province,
            by_line[s["line"]].school,
            s["class_name"] or "",
            s["number"],
            s["name"],
            s["ic_card_no"],
        )
        for s in stored
    ]
    canonical_sha = rules.sha256_hex(rules.canonical_text(canonical).encode())
    if not replayed:
        file_id = await tx.fetchval(
            """INSERT INTO student_import_files(school_id, version, filename, sha256,
                   size_bytes, content, row_count, added, updated, unchanged,
                   canonical_sha256, imported_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
            school_id,
            version,
            filename,
            digest,
            len(payload),
            payload,
            len(rows),
            added,
            updated,
            len(rows) - added - updated,
            canonical_sha,
            actor.user_id,
        )
    await tx.execute(
        """UPDATE student_records sr SET import_file_id = $2
             FROM import_staging s JOIN persons p ON p.school_id = $1 AND p.number = s.number
            WHERE sr.school_id = $1 AND sr.person_id = p.id""",
        school_id,
        file_id,
    )
    await audit.record(
        tx,
        actor,
        "students.import",
        school_id=school_id,
        target_type="student_import",
        target_id=file_id,
        after={
            "version": version,
            "filename": filename,
            "sha256": digest,
            "rows": len(rows),
            "added": added,
            "updated": updated,
            "replayed": replayed,
        },
    )
    return ImportResult(
        import_id=file_id,
        version=version,
        sha256=digest,
        rows=len(rows),
        added=added,
        updated=updated,
        unchanged=len(rows) - added - updated,
        canonical=canonical,
        canonical_sha256=canonical_sha,
        replayed=replayed,
        notes=notes,
    )


async def list_imports(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require("teacher", "card_center", school_id=school_id)
    rows = await conn.fetch(
        """SELECT f.id, f.version, f.filename, f.sha256, f.size_bytes, f.row_count, f.added,
                  f.updated, f.unchanged, f.canonical_sha256, u.username AS imported_by,
                  f.created_at
             FROM student_import_files f LEFT JOIN users u ON u.id = f.imported_by
            WHERE f.school_id = $1 ORDER BY f.version DESC""",
        school_id,
    )
    return [dict(r) for r in rows]


async def import_file_content(
    conn: Conn, actor: Actor, school_id: int, version: int
) -> tuple[str, bytes]:
    """A stored file version, byte for byte (the platform's backup of the upload)."""
    actor.require("teacher", "card_center", school_id=school_id)
    row = await conn.fetchrow(
        "SELECT filename, content FROM student_import_files WHERE school_id = $1 AND version = $2",
        school_id,
        version,
    )
    if row is None:
        raise NotFound(f"no import version {version}", field="version")
    return row["filename"], bytes(row["content"])
