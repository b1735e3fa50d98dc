"""Reading and writing whole columns of rows for the refresh, without a Python object per value.

At a million customers and ten million orders, SQLAlchemy's per-row work
(a Row per result row, bind processing per inserted value) was most of a
full refresh. On SQLite these helpers go to the DBAPI cursor directly and
hand values over in the form the database stores them (a datetime is bound
as the same text SQLAlchemy writes, so string comparisons in SQL keep
working). On PostgreSQL through psycopg2 rows are written with ``COPY ...
FROM STDIN`` in its text format (an executemany of a million rows took
three quarters of a full refresh there), numeric columns read with ``COPY
(query) TO STDOUT`` (binary) and other rows through a server-side cursor.
Other databases insert through SQLAlchemy Core, slower but exact.
"""
from __future__ import annotations

import io
import json
import re
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, Numeric, Table, Time, cast, func, insert, literal_column
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

#: Rows per DBAPI fetch: large enough to amortise the call, small enough to stay cache-friendly.
FETCH_BATCH = 50_000
#: Rows per executemany call on SQLite, per COPY statement on PostgreSQL (bounds the text held at once).
INSERT_BATCH = 100_000


def raw_driver(connection: Connection) -> bool:
    """True where rows are read from and written to the DBAPI cursor directly (SQLite:
    its driver has no server-side cursors, so SQLAlchemy never fetches ahead)."""
    return connection.dialect.name == "sqlite"


def copy_driver(connection: Connection) -> bool:
    """True where rows are written with ``COPY FROM STDIN`` (PostgreSQL through psycopg2)."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg2"


def fetch_columns(connection: Connection, queries: Iterable[Any], width: int) -> np.ndarray:
    """All rows of ``queries`` as one float64 array of ``width`` columns (NULL becomes NaN).

    Every selected column must already be numeric in SQL (cast it there).
    Measured on 900,000 orders: 1.4 s from the cursor, 14 s through Rows.
    On PostgreSQL the rows come by ``COPY (query) TO STDOUT`` in the binary
    format, read by numpy (no Python object per row at all).
    """
    parts: list[np.ndarray] = []
    if copy_driver(connection):
        parts = [_copy_out(connection, q, width) for q in queries]
        return np.concatenate(parts) if parts else np.empty((0, width))
    for batch in _batches(connection, queries):
        parts.append(np.array(batch, dtype=np.float64).reshape(len(batch), width))
    return np.concatenate(parts) if parts else np.empty((0, width))


def _copy_out(connection: Connection, query: Any, width: int) -> np.ndarray:
    """One numeric query's rows through ``COPY (...) TO STDOUT (FORMAT binary)``, as a float64 array.

    Every selected column is cast to ``double precision`` on the server and
    NULL turned into NaN there, so each row has the same binary layout (a
    field count, then a length and eight bytes per column) and numpy reads
    the whole answer as one structured array, without parsing any text
    (parsing 10,000,000 orders' text took 11 s). The casts change no value:
    integers are exact in a double, ``numeric`` converts correctly rounded.
    The statement is compiled for the connection's dialect (IN lists
    expanded) and its parameters bound by psycopg2's own ``mogrify``, as an
    execute would bind them; counts and lengths are checked.
    """
    nan = literal_column("'NaN'::float8")
    as_floats = query.with_only_columns(*(func.coalesce(cast(c, Float), nan) for c in query.selected_columns))
    compiled = as_floats.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    cursor = connection.connection.cursor()
    buffer = io.BytesIO()
    try:
        with _wrapped(connection, compiled.string):
            select_sql = cursor.mogrify(compiled.string, compiled.params)
            cursor.copy_expert(b"COPY (" + select_sql + b") TO STDOUT (FORMAT binary)", buffer, size=COPY_CHUNK)
    finally:
        cursor.close()
    return _binary_floats(buffer.getbuffer(), width)


#: COPY's binary format: an 11-byte signature, 32-bit flags and header-extension length; a 16-bit -1 at the end.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _binary_floats(data: memoryview, width: int) -> np.ndarray:
    """Rows of ``width`` non-NULL float8 fields from COPY's binary format."""
    if bytes(data[:11]) != _COPY_SIGNATURE:
        raise ValueError("not COPY binary data")
    start = 19 + int.from_bytes(data[15:19], "big")
    row = np.dtype([("count", ">i2")] + [(f"{k}{i}", t) for i in range(width) for k, t in (("len", ">i4"), ("v", ">f8"))])
    body = len(data) - start - 2
    if body % row.itemsize:
        raise ValueError(f"COPY binary data of {body} bytes is not rows of {row.itemsize}")
    rows = np.frombuffer(data, dtype=row, count=body // row.itemsize, offset=start)
    if not (rows["count"] == width).all() or not all((rows[f"len{i}"] == 8).all() for i in range(width)):
        raise ValueError("COPY binary rows are not all float8 fields")
    out = np.empty((len(rows), width))
    for i in range(width):
        out[:, i] = rows[f"v{i}"]
    return out


def fetch_rows(connection: Connection, queries: Iterable[Any]) -> list[tuple[Any, ...]]:
    """All rows of ``queries`` as tuples of driver values (on SQLite a DateTime is its stored text)."""
    out: list[tuple[Any, ...]] = []
    for batch in _batches(connection, queries):
        out.extend(batch)
    return out


def _batches(connection: Connection, queries: Iterable[Any]) -> Iterable[list[tuple[Any, ...]]]:
    raw = raw_driver(connection)
    for q in queries:
        if raw:
            result = connection.execute(q)
            cursor = result.cursor
            while True:
                with _wrapped(connection, "fetchmany"):
                    batch = cursor.fetchmany(FETCH_BATCH)
                if not batch:
                    break
                yield batch
        else:
            result = connection.execution_options(stream_results=True).execute(q)
            for rows in result.partitions(FETCH_BATCH):
                yield [tuple(r) for r in rows]
        result.close()


def insert_columns(connection: Connection, table: Table, data: dict[str, Sequence[Any]]) -> int:
    """Insert rows given column-wise (``data``: column name -> values, all the same length).

    DateTime values may be datetimes or, on SQLite, the stored text that
    `fetch_rows` returned (written back unchanged). Other values must be
    what the column holds (int, float, str, None): only DateTime needs
    converting on SQLite, where SQLAlchemy stores a fixed text format that
    the driver's own datetime adapter does not produce.
    """
    names = list(data)
    n = len(data[names[0]]) if names else 0
    if n == 0:
        return 0
    if copy_driver(connection):
        copy_columns(connection, table, data)
        return n
    if not raw_driver(connection):
        connection.execute(insert(table), [dict(zip(names, row)) for row in zip(*(data[k] for k in names))])
        return n
    dialect = connection.dialect
    columns: list[Sequence[Any]] = []
    for name in names:
        values = data[name]
        if isinstance(table.c[name].type, DateTime):
            process = _datetime_text(table.c[name].type, dialect)
            if process is not None:
                memo: dict[datetime, Any] = {}  # most values are the run's one ``now``

                def text_of(value: datetime) -> Any:
                    found = memo.get(value)
                    if found is None:
                        found = memo[value] = process(value)  # type: ignore[misc]
                    return found

                values = [text_of(v) if isinstance(v, datetime) else v for v in values]
        columns.append(values)
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    order = [names.index(key) for key in compiled.positiontup]
    columns = [columns[i] for i in order]
    cursor = connection.connection.cursor()
    try:
        for start in range(0, n, INSERT_BATCH):
            with _wrapped(connection, compiled.string):
                cursor.executemany(compiled.string, list(zip(*(c[start : start + INSERT_BATCH] for c in columns))))
    finally:
        cursor.close()
    return n


def copy_columns(connection: Connection, table: Table, data: dict[str, Sequence[Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` of rows given column-wise, in the
    connection's transaction (PostgreSQL through psycopg2).

    Values are what `insert_columns` takes: None is NULL, datetimes must be
    naive (as SQLAlchemy stores them in ``timestamp without time zone``),
    DateTime columns also take text PostgreSQL parses (e.g. SQLite's stored
    text). Each column is formatted once, by its type, into COPY's text
    format (`copy_text`), so a million rows cost a few list comprehensions.
    """
    names = list(data)
    n = len(data[names[0]]) if names else 0
    preparer = connection.dialect.identifier_preparer
    statement = (
        f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in names)}) "
        "FROM STDIN"
    )
    def payload(start: int) -> str:
        columns = [copy_text(table.c[name].type, data[name][start : start + INSERT_BATCH]) for name in names]
        return "\n".join(map("\t".join, zip(*columns))) + "\n"

    cursor = connection.connection.cursor()
    try:
        for text in _prepared_ahead(payload, range(0, n, INSERT_BATCH)):
            with _wrapped(connection, statement):
                cursor.copy_expert(statement, io.StringIO(text), size=COPY_CHUNK)
    finally:
        cursor.close()


def _prepared_ahead(make: Callable[[int], str], starts: range) -> Iterator[str]:
    """``make(start)`` for each start, the next one made on a thread while the caller
    uses the current: formatting a batch (Python) then overlaps the server parsing
    and indexing the previous one (its own process), on another core. The thread
    only builds strings; the connection stays with the caller."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Optional[Future[str]] = None
        for i, start in enumerate(starts):
            current = pending.result() if pending is not None else make(start)
            pending = pool.submit(make, starts[i + 1]) if i + 1 < len(starts) else None
            yield current


#: Characters read from the payload per write to the server during COPY.
COPY_CHUNK = 1 << 20
#: NULL in COPY's text format.
COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(column_type: Any, values: Sequence[Any]) -> list[str]:
    """``values`` of one column in COPY's text format: NULL as ``\\N``, backslash,
    tab, newline and carriage return escaped, numbers as Python's shortest
    round-trip text (so a float comes back bit-identical), booleans ``t``/``f``,
    datetimes in ISO form with microseconds, JSON serialised by ``json.dumps``
    (SQLAlchemy's default serialiser)."""
    if isinstance(column_type, Boolean):
        return [COPY_NULL if v is None else ("t" if v else "f") for v in values]
    if isinstance(column_type, (DateTime, Date, Time)):
        return _temporal_text(values, aware=bool(getattr(column_type, "timezone", False)))
    if isinstance(column_type, (Integer, Numeric)):  # Float is a Numeric
        return _number_text(values)
    if isinstance(column_type, JSON):  # as Core binds it: None is JSON null unless none_as_null
        keep_null = column_type.none_as_null
        values = [None if v is None and keep_null else json.dumps(v) for v in values]
    return [COPY_NULL if v is None else (_escape(v) if type(v) is str else _escape(str(v))) for v in values]


_PLAIN_NUMBERS = {int, float}


def _number_text(values: Sequence[Any]) -> list[str]:
    """A numeric column: ``str`` through ``map`` (C, no Python step per value) when it
    holds only Python ints and floats, the general rule otherwise (a str -- SQLite
    keeps text in any column -- is escaped like text, so it can never pass as NULL)."""
    types = set(map(type, values))
    if types <= _PLAIN_NUMBERS:
        return list(map(str, values))
    if types <= _PLAIN_NUMBERS | {type(None)}:
        return [COPY_NULL if v is None else str(v) for v in values]
    return [COPY_NULL if v is None else (_escape(v) if type(v) is str else str(v)) for v in values]


def _escape(text: str) -> str:
    return text.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(text) else text


def _temporal_text(values: Sequence[Any], aware: bool) -> list[str]:
    memo: dict[Any, str] = {}  # most values of a refresh are its one ``now``

    def text_of(value: Any) -> str:
        found = memo.get(value)
        if found is None:
            found = memo[value] = _temporal(value, aware)
        return found

    return [COPY_NULL if v is None else text_of(v) for v in values]


def _temporal(value: Any, aware: bool) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None and not aware:
            # psycopg2 would send it as timestamptz and the server convert it
            # to its own time zone: not what a naive UTC column means.
            raise ValueError(f"timezone-aware datetime for COPY: {value!r}")
        return value.isoformat(" ", "microseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return _escape(str(value))


@contextmanager
def _wrapped(connection: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (as `Connection.execute` would), so
    that callers -- `CRM`'s guard turning database failures into CRMUnavailable --
    see a disk-full or locked database the same way on this path."""
    dbapi = connection.dialect.dbapi
    try:
        yield
    except dbapi.Error as exc:  # type: ignore[union-attr]
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, hide_parameters=True, dialect=connection.dialect  # type: ignore[union-attr]
        ) from exc


_PROBES = (datetime(2001, 2, 3, 4, 5, 6, 7), datetime(2001, 2, 3, 4, 5, 6))


def _datetime_text(column_type: Any, dialect: Any) -> Optional[Callable[[datetime], Any]]:
    """The bind conversion of a DateTime column: ``isoformat`` (C, ~10 times
    faster at a million values) where it gives exactly SQLAlchemy's text, else
    SQLAlchemy's own processor (None: the driver takes datetimes as they are)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    if all(process(p) == p.isoformat(" ", "microseconds") for p in _PROBES):
        return lambda value: value.isoformat(" ", "microseconds")
    return process  # type: ignore[no-any-return]
