"""posthouse: a self-hosted transactional email API server."""

__version__ = "0.1.0"
