"""The query side: emails, their events, bodies and attachments, for every front door.

One repository (``repository.py``) holds the SQL, so seed 004's door, the native history
and later readers (webhooks, reports) read the same event store the same way."""
