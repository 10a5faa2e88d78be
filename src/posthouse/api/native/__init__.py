"""The native API (seed 000): ``routes`` (the front door), ``schemas`` (its models and
OpenAPI documentation), ``errors`` (its wording and error shape)."""
