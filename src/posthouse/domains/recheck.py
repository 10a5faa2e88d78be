"""The periodic re-check of every domain's DNS records, run beside the delivery worker.

Each round claims the domains not checked for ``domain_recheck_seconds`` in a short
transaction, looks their records up with no transaction open, then stores the answers.
A record that disappeared unverifies its domain, and submit() refuses its mail again.
"""

import asyncio
import logging
from datetime import timedelta

import dns.asyncresolver
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.domains import service as domains_service

log = logging.getLogger(__name__)

_LONGEST_NAP = 60.0


class DomainRechecker:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        resolver: dns.asyncresolver.Resolver,
        interval_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.resolver = resolver
        self.interval = timedelta(seconds=interval_seconds)

    async def run_once(self) -> int:
        """Re-check the domains that are due; return how many were checked."""
        async with self.sessionmaker.begin() as session:
            due = await domains_service.claim_due_rechecks(session, interval=self.interval)
        for detail in due:
            results = await domains_service.check_records(self.resolver, detail)
            async with self.sessionmaker.begin() as session:
                await domains_service.store_recheck(
                    session, domain_id=detail.domain.id, results=results
                )
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        nap = min(self.interval.total_seconds(), _LONGEST_NAP)
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("re-checking domain DNS records failed; retrying later")
            try:
                await asyncio.wait_for(stop.wait(), timeout=nap)
            except TimeoutError:
                pass
