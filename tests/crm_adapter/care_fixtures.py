"""Small builders for care tests: customers, consents and orders written straight
into the test database (arranging rows, not exercising the code under test)."""
from __future__ import annotations

import itertools
from datetime import date, datetime, time
from typing import Any, Optional

from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.models import (
    ChannelIdentity, Complaint, Consent, ContactPreference, Customer, Order, OrderItem, Product,
)

_numbers = itertools.count(1)


def customer(crm: CRM, *, name: str = "测试客户", birthday: Optional[date] = None, marketing: bool = True,
             channel: str = "wechat", timezone: str = "Asia/Shanghai", created: Optional[datetime] = None,
             **columns: Any) -> int:
    """A live customer with a WeChat identity and (by default) marketing consent on all channels."""
    n = next(_numbers)
    now = created or datetime(2020, 1, 1)
    with Session(crm.engine, future=True) as session, session.begin():
        row = Customer(name=name, phone=f"139{n:08d}", email=f"c{n}@example.com", birthday=birthday,
                       created_at=now, timezone=timezone, **columns)
        session.add(row)
        session.flush()
        if channel:
            session.add(ChannelIdentity(channel=channel, external_id=f"{channel}-open-{n}", customer_id=row.id,
                                        created_at=now))
        if marketing:
            session.add(Consent(customer_id=row.id, channel="all", purpose="marketing", granted=True,
                                source="test", recorded_by="customer", created_at=now))
        return int(row.id)


def refuse(crm: CRM, customer_id: int, at: datetime, purpose: str = "marketing") -> None:
    with Session(crm.engine, future=True) as session, session.begin():
        session.add(Consent(customer_id=customer_id, channel="all", purpose=purpose, granted=False,
                            source="test", recorded_by="customer", created_at=at))


def quiet_hours(crm: CRM, customer_id: int, start: time, end: time) -> None:
    with Session(crm.engine, future=True) as session, session.begin():
        session.add(ContactPreference(customer_id=customer_id, quiet_start=start, quiet_end=end,
                                      updated_at=datetime(2020, 1, 1)))


def product(crm: CRM, *, category: str = "pet", repurchase_days: Optional[int] = 30) -> int:
    n = next(_numbers)
    with Session(crm.engine, future=True) as session, session.begin():
        row = Product(sku=f"T-{n}", name=f"测试商品{n}", category=category, price=50,
                      repurchase_days=repurchase_days)
        session.add(row)
        session.flush()
        return int(row.id)


def order(crm: CRM, customer_id: int, product_id: int, at: datetime, status: str = "delivered") -> str:
    n = next(_numbers)
    number = f"9{n:011d}"
    with Session(crm.engine, future=True) as session, session.begin():
        row = Order(order_number=number, customer_id=customer_id, status=status, total=50, address="某地",
                    created_at=at, updated_at=at)
        session.add(row)
        session.flush()
        session.add(OrderItem(order_id=row.id, product_id=product_id, sku="T", name="测试商品", quantity=1,
                              unit_price=50))
    return number


def complaint(crm: CRM, customer_id: int, *, resolved_at: Optional[datetime], created: datetime,
              status: str = "resolved") -> str:
    n = next(_numbers)
    ticket = f"TS{created:%Y%m%d}{9000 + n % 1000:04d}"  # clear of the seed's 0001...
    with Session(crm.engine, future=True) as session, session.begin():
        session.add(Complaint(ticket_number=ticket, customer_id=customer_id, category="quality",
                              description="杯子有裂缝", severity="medium", status=status, channel="wechat",
                              sender_id="x", sla_due_at=created, created_at=created, resolved_at=resolved_at))
    return ticket
