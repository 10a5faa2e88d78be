"""The admin API of workspace keys (``Authorization: Bearer phk_...``, scope admin):
sending domains and the suppression list, in the native error shape."""
