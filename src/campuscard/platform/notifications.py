"""Telling people things: the in-app inbox, SMS through the outbox, and live events.

``notify`` runs inside the caller's transaction, so a notification exists exactly when the
change it reports was committed. SMS goes to the outbox with its delivery job (procrastinate,
deferred by the same statement) and is delivered by the worker (at least once, deduplicated by
key). Live events go through PostgreSQL NOTIFY, which PostgreSQL delivers only on commit;
listeners (server-sent events) relay them to pages.

A notification's title and body are messages (``i18n.message(key, **params)``): stored as a
catalog key with parameters and worded in the reader's language when the inbox is shown
(``i18n.word``); its SMS is worded in the recipient's language (``users.locale``) when it is
made. Rows stored earlier as a text per language still read.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from campuscard.db.pool import Conn
from campuscard.platform import i18n, queue

EVENTS_CHANNEL = "cc_events"


async def enqueue(
    conn: Conn,
    topic: str,
    payload: dict[str, Any],
    *,
    school_id: int | None,
    dedupe_key: str | None = None,
    available_at: datetime | None = None,
) -> bool:
    """Write a side effect to the outbox and defer its delivery job, in one statement on the
    caller's connection (so in the caller's transaction); returns False if the dedupe key was
    already there. ``available_at`` holds delivery until then (an SMS kept through someone's
    quiet hours): the job is scheduled for that time."""
    inserted = await conn.fetchrow(
        queue.ENQUEUE_SQL, school_id, topic, payload, dedupe_key, available_at
    )
    return inserted is not None


async def publish_event(conn: Conn, event: dict[str, Any]) -> None:
    """Push a small event to live listeners once the transaction commits."""
    await conn.execute(
        "SELECT pg_notify($1, $2)", EVENTS_CHANNEL, json.dumps(event, ensure_ascii=False)
    )


async def notify(
    conn: Conn,
    *,
    school_id: int,
    kind: str,
    title: dict[str, Any],
    body: dict[str, Any],
    person_id: int | None = None,
    user_id: int | None = None,
    data: dict[str, Any] | None = None,
    sms_phone: str | None = None,
    dedupe_key: str | None = None,
) -> int | None:
    """Put a notification in the inbox of a cardholder (``person_id``) or a user, optionally
    also by SMS. ``title``/``body`` are messages (``i18n.message``), worded in the reader's
    language when shown, and the SMS in the recipient's. Returns the id, or None when
    ``dedupe_key`` was already used."""
    notification_id: int | None = await conn.fetchval(
        """INSERT INTO notifications(school_id, person_id, user_id, kind, title, body, data,
                                     dedupe_key, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, cc_clock())
           ON CONFLICT (school_id, dedupe_key) DO NOTHING RETURNING id""",
        school_id,
        person_id,
        user_id,
        kind,
        title,
        body,
        data or {},
        dedupe_key,
    )
    if notification_id is None:
        return None
    if sms_phone:
        locale = await reader_locale(conn, school_id, person_id=person_id, user_id=user_id)
        await enqueue(
            conn,
            "sms",
            {"phone": sms_phone, "text": i18n.word(locale, body)},
            school_id=school_id,
            dedupe_key=f"sms:notification:{notification_id}",
        )
    await publish_event(
        conn,
        {
            "type": "notification",
            "kind": kind,
            "school_id": school_id,
            "person_id": person_id,
            "user_id": user_id,
            "id": notification_id,
        },
    )
    return notification_id


async def reader_locale(
    conn: Conn, school_id: int, *, person_id: int | None = None, user_id: int | None = None
) -> str:
    """The language a notification's reader chose (``users.locale``, set by the language
    switch): the user's, else the cardholder's own account's, else Chinese."""
    locale: str | None = await conn.fetchval(
        """SELECT locale FROM users
            WHERE id = $2 OR ($2::bigint IS NULL AND person_id = $3 AND school_id = $1)
            LIMIT 1""",
        school_id,
        user_id,
        person_id,
    )
    return locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE


async def list_for_person(conn: Conn, person_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, kind, title, body, data, created_at, read_at FROM notifications
            WHERE person_id = $1 ORDER BY id DESC LIMIT $2""",
        person_id,
        limit,
    )
    return [dict(r) for r in rows]


async def list_for_user(conn: Conn, user_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, kind, title, body, data, created_at, read_at FROM notifications
            WHERE user_id = $1 ORDER BY id DESC LIMIT $2""",
        user_id,
        limit,
    )
    return [dict(r) for r in rows]


async def mark_read(conn: Conn, *, person_id: int | None = None, user_id: int | None = None) -> int:
    """Mark the whole inbox of a cardholder or a user read; returns how many changed."""
    if person_id is None and user_id is None:
        return 0
    status: str = await conn.execute(
        """UPDATE notifications SET read_at = now()
            WHERE read_at IS NULL AND (person_id = $1 OR user_id = $2)""",
        person_id,
        user_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def unread_count(conn: Conn, *, person_id: int | None, user_id: int | None) -> int:
    count: int = await conn.fetchval(
        """SELECT count(*) FROM notifications
            WHERE read_at IS NULL AND (person_id = $1 OR user_id = $2)""",
        person_id,
        user_id,
    )
    return count
