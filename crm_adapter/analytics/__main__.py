"""``python -m crm_adapter.analytics refresh [--full] [--strict] | kpis [--start --end] | segments``.

Works on the CRM named by ``KEFU_CRM_URL`` (or ``--url``). Prints one line
for ``refresh`` (cron-friendly) and JSON for ``kpis`` and ``segments``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy.orm import Session

from .. import config
from ..errors import CRMError, InvalidInput
from ..service import CRM
from .refresh import refresh
from .segments import segment


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"not an ISO date/time: {text!r}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_adapter.analytics")
    parser.add_argument("--url", default=None, help="SQLAlchemy URL (default: KEFU_CRM_URL or var/crm.sqlite3)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_refresh = sub.add_parser("refresh", help="recompute the customer model (incrementally by default)")
    p_refresh.add_argument("--full", action="store_true", help="recompute every customer")
    p_refresh.add_argument("--strict", action="store_true", help="refuse when bad orders are found")
    p_kpis = sub.add_parser("kpis", help="print the KPIs as JSON")
    p_kpis.add_argument("--start", type=_when, default=None, help="UTC, default: 30 days before --end")
    p_kpis.add_argument("--end", type=_when, default=None, help="UTC, default: now")
    p_seg = sub.add_parser("segments", help="K-means segments; stores each customer's cluster")
    p_seg.add_argument("--seed", type=int, default=42)
    p_seg.add_argument("--dry-run", action="store_true", help="do not store clusters")
    args = parser.parse_args(argv)

    crm = CRM(args.url or config.crm_url())
    try:
        crm.create_schema()
        if args.command == "refresh":
            result = crm.refresh_analytics(full=args.full, strict=args.strict)
            print(f"refreshed {result.customers_refreshed} customers ({result.kind}, "
                  f"{result.rows_rescored} re-scored, {result.excluded_orders} orders excluded) "
                  f"in {result.seconds:.2f} s")
        elif args.command == "kpis":
            end = args.end or crm._now()
            start = args.start or end - timedelta(days=30)
            print(json.dumps(asdict(crm.kpis(start, end)), ensure_ascii=False, indent=2, default=_json_default))
        else:
            with Session(crm.engine, future=True) as session:
                result = segment(session, crm._now(), seed=args.seed, store=not args.dry_run)
            if result is None:
                print(json.dumps({"k": 0, "profiles": [], "note": "too few customers with orders"}))
            else:
                print(json.dumps(asdict(result), ensure_ascii=False, indent=2))
    except InvalidInput as exc:
        print(exc.message_zh, file=sys.stderr)
        return 2
    except CRMError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        crm.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
