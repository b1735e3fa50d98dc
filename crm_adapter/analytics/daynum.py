"""Times as day numbers (fractional days since 1970-01-01 UTC), in Python and in SQL.

The refresh reads millions of timestamps; letting the database turn them
into one float each (``julianday`` on SQLite, ``EXTRACT(EPOCH ...)`` on
PostgreSQL) avoids parsing a datetime string per row in Python, and gives
numbers that compare exactly the same on both sides.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

EPOCH = datetime(1970, 1, 1)


class day_number(FunctionElement):  # noqa: N801 -- reads like a SQL function
    type = Float()
    inherit_cache = True


@compiles(day_number, "sqlite")
def _sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(day_number)
def _default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) / 86400.0)"


def to_day(moment: datetime) -> float:
    """A naive UTC datetime as a day number."""
    return (moment - EPOCH) / timedelta(days=1)


def from_day(day: Optional[float]) -> Optional[datetime]:
    if day is None:
        return None
    return EPOCH + timedelta(days=day)
