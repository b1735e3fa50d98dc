"""What customers complain about this week vs last week: keyword counts.

Counts of jieba words (crm_adapter.complaint_search's tokeniser, stop words
removed, one count per complaint however often the word repeats in it) over
complaint descriptions.  A word is *rising* when it appears in at least
``min_count`` complaints this week and at least twice as many as last week
(or is new), so a manager spots a new problem early.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..complaint_search import description_tokens, tokens
from ..models import Complaint, ComplaintSearch

#: Words shorter than this say little on their own (单字 like 慢, 差).
MIN_WORD_LEN = 2
MAX_COMPLAINTS = 20_000


def keyword_counts(descriptions: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text_ in descriptions:
        counts.update({t for t in tokens(text_) if len(t) >= MIN_WORD_LEN and not t.isdigit()})
    return counts


def compare(this_week: Counter[str], last_week: Counter[str], top: int = 20,
            min_count: int = 3) -> list[dict[str, Any]]:
    """The ``top`` words of this week with last week's count and a rising flag."""
    out = []
    for word, n in sorted(this_week.items(), key=lambda item: (-item[1], item[0]))[:top]:
        before = last_week.get(word, 0)
        out.append({"word": word, "this_week": n, "last_week": before,
                    "rising": n >= min_count and n >= 2 * before})
    return out


def token_counts(token_lists: Iterable[Iterable[str]]) -> Counter[str]:
    """Like `keyword_counts`, over already tokenised complaints."""
    counts: Counter[str] = Counter()
    for words in token_lists:
        counts.update({t for t in words if len(t) >= MIN_WORD_LEN and not t.isdigit()})
    return counts


def _week_counts(session: Session, start: datetime, end: datetime) -> Counter[str]:
    """The week's keywords: the description part of the search index's tokens, jieba where missing."""
    rows = session.execute(
        select(Complaint.description, ComplaintSearch.tokens)
        .outerjoin(ComplaintSearch, ComplaintSearch.complaint_id == Complaint.id)
        .where(Complaint.created_at >= start, Complaint.created_at < end).limit(MAX_COMPLAINTS)).all()
    return token_counts(description_tokens(stored) if stored is not None else tokens(description)
                        for description, stored in rows)


def topics(session: Session, week_start: datetime, top: int = 20) -> list[dict[str, Any]]:
    """Keywords of the week starting ``week_start`` (naive UTC) against the week before."""
    this_week = _week_counts(session, week_start, week_start + timedelta(days=7))
    last_week = _week_counts(session, week_start - timedelta(days=7), week_start)
    return compare(this_week, last_week, top)
