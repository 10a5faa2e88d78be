"""Settings, read from the environment (prefix ``POSTHOUSE_``) and an optional ``.env`` file."""

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET = "change-me-posthouse-development-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POSTHOUSE_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    environment: str = Field("development", description="development or production")
    database_url: str = "sqlite+aiosqlite:///./var/posthouse.db"
    # maildir:PATH, smtp://[user:password@]host:port[?tls=none|starttls|implicit], or mx:
    delivery_url: str = "maildir:./var/maildir"
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    # Keys that signed tracking and unsubscribe links before the current secret_key:
    # they still verify, so rotating the key never breaks links in mail already sent.
    # Comma-separated in the environment.
    previous_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # The base of every link posthouse puts in mail (pixel, clicks, unsubscribe).
    public_url: str = "http://127.0.0.1:8025"

    # Worker
    worker_concurrency: int = Field(16, ge=1, description="SMTP sends in flight per worker")
    worker_batch_size: int = Field(200, ge=1, description="deliveries claimed per query")
    worker_poll_seconds: float = Field(1.0, gt=0, description="idle wait between claims")
    lease_seconds: float = Field(
        300.0, gt=0, description="how long a claim outlives a stopped worker; renewed every third"
    )
    worker_shutdown_seconds: float = Field(
        8.0, gt=0, description="a stopping worker exits within this; keep it under the grace"
    )
    retry_base_seconds: float = Field(60.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    queue_lifetime_seconds: float = Field(5 * 24 * 3600.0, gt=0)
    smtp_timeout_seconds: float = Field(60.0, gt=0)
    smtp_connections: int = Field(8, ge=1, description="relay connections kept open")
    helo_name: str | None = None

    # API
    max_request_bytes: int = Field(40 * 1024 * 1024, ge=1024)
    # A request body must arrive whole within this; a slower one is cut off with 408.
    body_read_timeout_seconds: float = Field(60.0, gt=0)
    # uvicorn: an open connection must finish a request's headers within this (else it
    # is closed), an idle keep-alive connection is closed after timeout_keep_alive, and
    # request headers larger than h11_max_header_bytes are refused.
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    http_keep_alive_seconds: int = Field(5, ge=1)
    http_max_header_bytes: int = Field(16 * 1024, ge=1024)
    # How long an api process reuses a sender's resolved key and a domain it found
    # verified: revoking a key, suspending a workspace or a domain losing its
    # verification reaches every process within this time.
    auth_cache_seconds: float = Field(1.0, ge=0, description="0 = look them up every time")
    require_verified_domains: bool = True
    # How long a signed attachment download URL (seed 004) works after it is handed out.
    attachment_url_seconds: float = Field(300.0, gt=0)

    # Sending domains: the host named in the SPF and return-path MX records to publish
    # (defaults to helo_name, then this machine's FQDN), and how often DNS is re-checked.
    mail_hostname: str | None = None
    domain_recheck_seconds: float = Field(3600.0, gt=0)
    rate_limit_per_ip: float = Field(10.0, ge=0, description="requests/s per IP, 0 = off")
    rate_limit_per_key: float = Field(50.0, ge=0, description="requests/s per key, 0 = off")
    rate_limit_burst: float = Field(2.0, ge=1, description="bucket size in seconds of rate")
    # Seed 001's door ("no more than 10 requests per second from one IP"): its own IP
    # buckets at this rate; unset, the door shares rate_limit_per_ip (also 10 by default).
    emailmassivo_rate_limit_per_ip: float | None = Field(
        None, ge=0, description="requests/s per IP on seed 001's door, 0 = off"
    )
    trusted_proxies: list[str] = Field(default_factory=list)

    # Direct MX delivery and inbound bounce processing
    # Comma-separated in the environment: POSTHOUSE_DNS_RESOLVERS=127.0.0.1:5353,10.0.0.53
    dns_resolvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dns_timeout_seconds: float = Field(5.0, gt=0)
    mx_port: int = 25
    tls_policy: str = Field(
        "opportunistic", description="opportunistic, require or require_verified"
    )
    # Per destination (recipient domain): open connections, sends/s, and how long a
    # destination that answered 421 or 4.7.x is left alone before the next try.
    mx_connections_per_destination: int = Field(4, ge=1)
    mx_rate_per_destination: float = Field(50.0, ge=0, description="sends/s, 0 = unlimited")
    mx_messages_per_connection: int = Field(100, ge=1)
    mx_slowdown_seconds: float = Field(60.0, ge=0)
    # A block (the sending IP or domain refused, delivery/classify.py): "defer" retries
    # the copy while the destination backs off, "fail" fails it at once. Neither
    # suppresses the recipient or counts toward the bounce rate.
    block_action: str = Field("defer", description="defer or fail")
    block_backoff_seconds: float = Field(900.0, gt=0, description="first backoff after a block")
    block_backoff_max_seconds: float = Field(
        4 * 3600.0, gt=0, description="backoffs double up to this while blocks go on"
    )
    inbound_bind: str = "127.0.0.1:2525"
    inbound_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)

    @field_validator("dns_resolvers", mode="before")
    @classmethod
    def _split_resolvers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("previous_secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or any(c in value for c in "\r\n <>"):
            raise ValueError("public_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("tls_policy")
    @classmethod
    def _known_tls_policy(cls, value: str) -> str:
        if value not in {"opportunistic", "require", "require_verified"}:
            raise ValueError("tls_policy must be opportunistic, require or require_verified")
        return value

    @field_validator("block_action")
    @classmethod
    def _known_block_action(cls, value: str) -> str:
        if value not in {"defer", "fail"}:
            raise ValueError("block_action must be defer or fail")
        return value

    def check_production_secrets(self) -> None:
        """Refuse to run in production with the published development secret."""
        if (
            self.environment == "production"
            and self.secret_key.get_secret_value() == DEFAULT_SECRET
        ):
            raise RuntimeError("set POSTHOUSE_SECRET_KEY before running in production")


@lru_cache
def get_settings() -> Settings:
    return Settings()
