"""Chinese full-text search over complaints: jieba tokens in the database's own index.

Why jieba tokens and not the database's tokenizer: neither SQLite's FTS5
nor PostgreSQL's text search segments Chinese words, so a complaint is cut
into words here (``jieba.lcut_for_search``: whole words and their shorter
parts, so 「退款」 finds 「退款慢」's complaint too), stored space-joined in
``complaint_search.tokens``, and matched there by FTS5 (SQLite) or a GIN
index over ``to_tsvector('simple', tokens)`` (PostgreSQL).

What is indexed: the complaint's description and a snapshot of its
conversation (customer, bot and agent texts of its channel + sender_id in
Rasa's SQL event broker table).  The snapshot is taken by `refresh`, which
the desk runs at start-up and then every ``KEFU_COMPLAINT_INDEX_EVERY``
seconds (default 600), and operators can run as
``python -m crm_adapter.complaint_log reindex``.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Optional

from sqlalchemy import (Integer, bindparam, column, create_engine, exists, func, inspect, literal_column, or_, select,
                        table, text)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .errors import InvalidInput
from .models import Complaint, ComplaintSearch

log = logging.getLogger(__name__)

#: Words too common in complaints to tell one from another (plus jieba's usual fillers).
STOP_WORDS = frozenset("""
的 了 是 我 你 他 她 它 们 我们 你们 在 有 和 就 不 也 都 还 又 很 吧 吗 呢 啊 呀 哦 嗯 么 什么 怎么 这 那 这个 那个
一个 一下 没有 没 给 到 说 要 会 能 可以 把 被 让 对 跟 与 及 或 等 着 过 啦 哈 诶 请 您 好 谢谢 已经 但是 因为 所以
如果 然后 还是 就是 自己 现在 今天 昨天 一直 怎么办 为什么 客服 机器人 你好 您好
""".split())
MAX_QUERY_LEN = 100
#: Between the description's tokens and the transcript's (never a token itself:
#: tokens hold word characters; both indexes read it as a blank).
SEPARATOR = " | "
MAX_TOKENS_CHARS = 200_000
MSG_QUERY = f"搜索内容不超过{MAX_QUERY_LEN}个字。"
_WORD = re.compile(r"\w", re.UNICODE)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba, loaded once (its dictionary takes about a second) and quietly."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _keep(token: str) -> bool:
    token = token.strip()
    return bool(token) and bool(_WORD.search(token)) and token not in STOP_WORDS and token != "_"


def tokens(text_: str) -> list[str]:
    """Index tokens of ``text_``: words and their sub-words, lower-cased, no stop words."""
    return [t.strip().lower() for t in _jieba().lcut_for_search(text_ or "") if _keep(t)]


def query_tokens(query: str) -> list[str]:
    """The words a search must all find (jieba's precise mode, so 「退款慢」 is 退款 + 慢)."""
    query = (query or "").strip()
    if len(query) > MAX_QUERY_LEN:
        raise InvalidInput(MSG_QUERY)
    words = [t.strip().lower() for t in _jieba().lcut(query) if _keep(t)]
    # Only word characters reach the database's query syntax.
    return list(dict.fromkeys("".join(ch for ch in w if _WORD.match(ch)) for w in words if w))


def description_tokens(stored: str) -> list[str]:
    """The description's part of a stored token string (topic counts leave the transcript out)."""
    return stored.split(SEPARATOR, 1)[0].split()


def _pg_match(words: list[str]) -> Any:
    vector = func.to_tsvector(literal_column("'simple'::regconfig"), ComplaintSearch.tokens)
    query = func.plainto_tsquery(literal_column("'simple'::regconfig"), " ".join(words))
    return vector.op("@@")(query)


def matching_ids(dialect: str, words: list[str]) -> Any:
    """A subquery of the complaint ids whose tokens hold every one of ``words``."""
    if dialect == "postgresql":
        return select(ComplaintSearch.complaint_id).where(_pg_match(words))
    return select(literal_column("rowid")).select_from(text("complaint_search_fts")).where(
        literal_column("complaint_search_fts").op("MATCH")(_fts_query(words)))


def probe_each(words: list[str], complaint_id: Any) -> Any:
    """PostgreSQL, for words found in many complaints: test each row the page walks.

    PostgreSQL estimates a tsquery's matches badly (a few hundred for fifty
    thousand).  As a join it then collects and sorts every match, or — with
    another filter — scans the whole filter and joins (1–2 s at a million).
    ``OFFSET 0`` keeps this EXISTS from being turned into a join, so the
    planner walks the sort (or filter) index newest first and looks each row
    up in ``pk_complaint_search`` until the page is full: with a word in one
    complaint in twenty, about a thousand lookups (10–20 ms).  The cost is a
    long walk when the filter and the words rarely meet; rare words take the
    other road (``matching_ids`` collected first).
    """
    return exists(select(literal_column("1")).select_from(ComplaintSearch)
                  .where(ComplaintSearch.complaint_id == complaint_id, _pg_match(words)).offset(0))


def fts_table() -> Any:
    """SQLite's FTS5 table as a selectable (rowid = complaint id)."""
    return table("complaint_search_fts", column("rowid", Integer))


def fts_match(words: list[str]) -> Any:
    """SQLite only: the FTS5 condition for every one of ``words`` (with `fts_table` in FROM)."""
    return literal_column("complaint_search_fts").op("MATCH")(_fts_query(words))


def _fts_query(words: list[str]) -> str:
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def _joined(description: str, transcript: Iterable[str]) -> str:
    said = [t for line in transcript for t in tokens(line)]
    joined = " ".join(tokens(description))
    if said:
        joined = joined + SEPARATOR + " ".join(said)
    return joined[:MAX_TOKENS_CHARS]


def _store(session: Session, complaint_id: int, joined: str, now: datetime, transcript_taken: bool) -> None:
    row = session.get(ComplaintSearch, complaint_id)
    if row is None:
        row = ComplaintSearch(complaint_id=complaint_id, tokens=joined, updated_at=now)
        session.add(row)
    else:
        row.tokens, row.updated_at = joined, now
    if transcript_taken:
        row.transcript_indexed_at = now


def index_text(session: Session, complaint_id: int, description: str, transcript: Iterable[str],
               now: datetime, transcript_taken: bool) -> None:
    """Write (insert or replace) the complaint's tokens."""
    _store(session, complaint_id, _joined(description, transcript), now, transcript_taken)


def _event_texts(rows: Iterable[Any]) -> list[str]:
    """Customer, bot and agent texts from Rasa event-broker rows (JSON in ``data``)."""
    texts = []
    for (data,) in rows:
        try:
            event = json.loads(data) if isinstance(data, str) else data
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") in ("user", "bot"):
            value = event.get("text")
            if isinstance(value, str) and value:
                texts.append(value)
    return texts


def transcripts(events: Engine, senders: set[str], limit: int = 2000) -> dict[str, list[str]]:
    """The conversations' texts from Rasa's ``events`` table, for a batch of sender ids at once.

    One query per batch: Rasa's table has no index on ``sender_id``, so one
    query per complaint would scan it once per complaint.  At most ``limit``
    texts per conversation are kept (the first ones).
    """
    texts: dict[str, list[str]] = {s: [] for s in senders}
    if not senders or not inspect(events).has_table("events"):
        return texts  # Rasa creates the table with its first event: no conversation yet
    query = text("SELECT sender_id, data FROM events WHERE sender_id IN :s ORDER BY id").bindparams(
        bindparam("s", expanding=True))
    with events.connect() as conn:
        for sender, data in conn.execute(query, {"s": sorted(senders)}):
            if len(texts[sender]) < limit:
                texts[sender].extend(_event_texts([(data,)]))
    return texts


def refresh(engine: Engine, now: datetime, events_url: Optional[str] = None, batch: int = 100,
            limit: Optional[int] = None) -> int:
    """Index complaints that have no tokens yet, then re-take stale transcripts.

    A transcript is stale while its complaint is still open or was updated
    after the last snapshot; closed complaints keep their last snapshot.
    Each batch is read, tokenised (and its transcripts fetched) with no CRM
    transaction open, then written in one short transaction, so the desk and
    the action server never wait on the indexer's lock.
    Returns how many complaints were (re)indexed.
    """
    events = create_engine(events_url, future=True) if events_url else None
    done = 0
    try:
        while limit is None or done < limit:
            wanted = ComplaintSearch.complaint_id.is_(None)
            if events is not None:
                wanted = or_(wanted, ComplaintSearch.transcript_indexed_at.is_(None),
                             Complaint.status.in_(("open", "pending")),
                             Complaint.updated_at > ComplaintSearch.transcript_indexed_at)
            stale = (
                select(Complaint.id, Complaint.description, Complaint.sender_id)
                .outerjoin(ComplaintSearch, ComplaintSearch.complaint_id == Complaint.id)
                # Not twice in one run: rows done in this run carry ``now``.
                .where(wanted, or_(ComplaintSearch.updated_at.is_(None), ComplaintSearch.updated_at < now))
                .order_by(Complaint.id).limit(batch)
            )
            with Session(engine, future=True) as session:
                rows = session.execute(stale).all()
            if not rows:
                break
            said = transcripts(events, {sender for _, _, sender in rows}) if events is not None else {}
            prepared = [(cid, description, said.get(sender, [])) for cid, description, sender in rows]
            texts = [(cid, _joined(description, lines)) for cid, description, lines in prepared]
            with Session(engine, future=True) as session:
                for cid, joined in texts:
                    _store(session, cid, joined, now, events is not None)
                session.commit()
            done += len(rows)
    finally:
        if events is not None:
            events.dispose()
    if done:
        log.info("complaint search index: %s complaints (re)indexed", done)
    return done
