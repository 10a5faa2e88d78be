"""Credentials: random tokens shown once, stored as SHA-256 digests, compared in constant time.

The tokens carry 192+ bits of entropy, so a fast hash is enough: nobody can brute-force
the preimage, and a slow KDF would cost every API request milliseconds.
"""

import hashlib
import hmac
import secrets

ACCESS_PREFIX = "pha_"
SECRET_PREFIX = "phs_"
KEY_PREFIX = "phk_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_access_token() -> str:
    return ACCESS_PREFIX + secrets.token_urlsafe(24)


def new_secret_token() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_matches(secret: str, expected_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), expected_digest)


def new_workspace_key() -> tuple[str, str, str]:
    """A single-string key ``phk_<id>.<secret>``: returns (key, lookup digest, secret digest)."""
    key_id, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{key_id}.{secret}", digest(KEY_PREFIX + key_id), digest(secret)


def split_workspace_key(key: str) -> tuple[str, str] | None:
    """(lookup digest, secret) of a ``phk_`` key, or None when it is not one."""
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    key_id, secret = key.split(".", 1)
    return digest(key_id), secret
