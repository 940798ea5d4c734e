"""Platform.

Who calls (actors, auth, users), audit, idempotency, request context, notifications, live
events, the outbox and the worker.
"""
