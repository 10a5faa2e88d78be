"""The admin API of workspace keys (``Authorization: Bearer phk_...``, scope admin):
sending domains, the suppression list and stored templates, in the native error shape."""
