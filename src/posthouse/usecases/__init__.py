"""Email use cases: named streams of mail bound to one sending domain (seed 004)."""
