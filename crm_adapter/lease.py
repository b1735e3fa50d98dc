"""A leader lease in the CRM database: at most one holder of a name at a time.

Why a row and not an advisory lock: it works the same on SQLite and
PostgreSQL, survives connection pools, and a holder that dies (SIGKILL, a
lost machine) simply stops renewing -- its lease lapses after ``ttl`` and a
standby takes over. Every change is one conditional UPDATE (or the INSERT
that creates the row, where the primary key settles a tie), so two
contenders can never both win. Holders compare against their own clocks:
keep machines NTP-synced and ``ttl`` well above any skew.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import config, policy
from .models import SchedulerLease


class Lease:
    def __init__(self, engine: Engine, name: str, holder: str, ttl: timedelta,
                 clock: Optional[Callable[[], datetime]] = None) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def _now(self) -> datetime:
        return policy.utc_naive(self._clock())

    def acquire(self) -> bool:
        """Take the lease if it is free, lapsed or already ours (then it is renewed)."""
        now = self._now()
        with Session(self.engine, future=True) as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            taken = session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == self.name,
                       or_(SchedulerLease.holder == self.holder, SchedulerLease.expires_at < now))
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                return True
            if session.execute(select(SchedulerLease.name).where(SchedulerLease.name == self.name)).first():
                return False
        try:
            with Session(self.engine, future=True) as session, session.begin():
                session.add(SchedulerLease(name=self.name, holder=self.holder, acquired_at=now,
                                           expires_at=now + self.ttl))
            return True
        except IntegrityError:
            return False

    def renew(self) -> bool:
        """Extend our unexpired lease; False means we lost it and must stop leading."""
        now = self._now()
        with Session(self.engine, future=True) as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == self.name, SchedulerLease.holder == self.holder,
                       SchedulerLease.expires_at >= now)
                .values(expires_at=now + self.ttl)
                .execution_options(synchronize_session=False)
            ).rowcount == 1

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so a standby need not wait."""
        now = self._now()
        with Session(self.engine, future=True) as session, session.begin():
            session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == self.name, SchedulerLease.holder == self.holder)
                .values(expires_at=now - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )

    def holder_now(self) -> Optional[tuple[str, datetime]]:
        """Who holds the lease and until when (None if nobody ever did)."""
        with Session(self.engine, future=True) as session:
            row = session.get(SchedulerLease, self.name)
            return (row.holder, row.expires_at) if row else None
