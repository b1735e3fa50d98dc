"""`CRM`: the interface of docs/crm-interface.md, over SQLAlchemy.

How every method is built, so that the contract holds by construction
rather than by care in each method:

* `_guarded` wraps each public method: database and driver failures become
  `CRMUnavailable`; `CRMError`s pass through; nothing else is expected.
* Reads open a short session and return views built inside it.
* Writes go through `_write(kind, key, work)`: one transaction (``BEGIN
  IMMEDIATE`` on SQLite) that first looks the idempotency key up in
  ``processed_operations``, returns the stored result if found, otherwise
  runs ``work`` and stores its encoded result next to the change — both
  commit or neither does. A unique-key race (two workers with the same key
  or the same new ticket number) surfaces as IntegrityError and is retried
  once, when the winner's row is visible.
* Input is validated before the transaction (`crm_adapter.validation`);
  refusals that depend on the data (order not returnable …) raise
  `InvalidInput` inside it, which rolls everything back and stores nothing,
  so a retry after the situation changed is judged afresh.
* Orders are only ever looked up together with their owner's id: an order
  number that belongs to someone else behaves exactly like one that does
  not exist.

Feedback is never lost to bookkeeping: complaints, escalations, ratings and
interactions for a customer id that no longer resolves are recorded as
anonymous (with the sender id) rather than refused.
"""
from __future__ import annotations

import functools
import hmac
import threading
import time
import unicodedata
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, TypeVar

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from . import config, consent, convert, policy, servicedesk, validation
from .catalogue import CATEGORIES, CATEGORY_ALIASES, canonical_category
from .errors import CRMError, CRMUnavailable, IdempotencyConflict, InvalidInput, NotFound
from .masking import guard_logger, mask_text
from .models import (
    ACTIVE_ESCALATION_STATUSES,
    COMPLAINT_CATEGORIES,
    OPEN_COMPLAINT_STATUSES,
    OPEN_RETURN_STATUSES,
    PAYMENT_PROBLEMS,
    AnalyticsRun,
    ChannelIdentity,
    Complaint,
    Consent,
    ContactPreference,
    Coupon,
    CsatRating,
    Customer,
    Escalation,
    EscalationEvent,
    Interaction,
    InvoiceRequest,
    NpsResponse,
    NumberSequence,
    Order,
    OrderItem,
    PaymentTicket,
    ProcessedOperation,
    Product,
    ReturnRequest,
    VerificationAttempt,
)
from .analytics.kpis import kpi_report
from .analytics.profile import customer_profile as analytics_profile
from .analytics.profile import live_customer_profile as live_analytics_profile
from .analytics.refresh import RefreshResult
from .analytics.refresh import last_run as analytics_last_run
from .analytics.refresh import refresh as analytics_refresh
from .analytics.settings import DEFAULT as DEFAULT_ANALYTICS_SETTINGS
from .analytics.settings import Settings as AnalyticsSettings
from .retention import CONSENT_CHANNEL_OF, DRIFTING_STAGES, RetentionOffer, offer_from_env
from .recommend import Signals, live_signals, recommend_products, stored_signals
from .views import (
    ORDER_STATUS_LABELS,
    RETURN_STATUS_LABELS,
    ComplaintView,
    CustomerProfileView,
    ConsentView,
    CouponView,
    CustomerView,
    ErasureReport,
    EscalationView,
    InvoiceRequestView,
    KpiReport,
    MembershipView,
    OrderChange,
    OrderView,
    ProductView,
    QuietHoursView,
    ReturnView,
    TicketView,
    decode,
    encode,
)

if TYPE_CHECKING:  # pragma: no cover
    from .care import Care
    from .directory import CustomerDirectory
    from .outbox import DrainReport, Outbox

log = guard_logger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

PROFILE_FIELDS = ("phone", "birthday", "email", "address", "name")
_PROFILE_COLUMNS = {
    "phone": "phone",
    "birthday": "birthday",
    "email": "email",
    "address": "default_address",
    "name": "name",
}

MSG_ORDER_NOT_FOUND = "没有查到这个订单，请核对一下订单号。"
MSG_COMPLAINT_NOT_FOUND = "没有查到这个投诉单号，请核对一下。"
MSG_PROFILE_FIELD = "目前可以修改的是手机号、生日、邮箱、地址和姓名，请问您要改哪一项？"
MSG_PHONE_TAKEN = "这个手机号暂时无法绑定到您的账户，如有疑问请联系人工客服。"
MSG_RETURN_REASON = "请简单说一下退货原因，例如：尺码不合适、商品有质量问题。"
MSG_COMPLAINT_CATEGORY = "请问您要投诉的是物流、商品质量、服务态度、价格、售后还是其他问题？"
MSG_COMPLAINT_DESCRIPTION = "请简单描述一下遇到的问题（2000字以内），我们会尽快处理。"
MSG_PAYMENT_PROBLEM = "请问遇到的是支付失败、重复扣款，还是扣款了但没有生成订单？"
MSG_DESCRIPTION = "问题描述太长了，请精简到1000字以内。"
MSG_ESCALATION_REASON = "请简单说一下需要人工客服帮您处理什么问题。"
MSG_CSAT_SCORE = "评分请在1到5分之间选择，5分为非常满意。"
MSG_NPS_SCORE = "推荐意愿请在0到10分之间选择，10分为非常愿意推荐。"

#: Seconds a CRM reuses the latest analytics run it read (see `_latest_analytics_run`).
ANALYTICS_RUN_CACHE_S = 60.0

# A write that loses a race (see `_lost_a_race`) is run again, up to this many times in all.
_WRITE_ATTEMPTS = 3
_COMMENT_MAX = 500
_SUMMARY_MAX = 500


def _guarded(method: F) -> F:
    """Let `CRMError` through; turn every database or driver failure into `CRMUnavailable`."""

    @functools.wraps(method)
    def wrapper(self: "CRM", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except CRMError:
            raise
        except (SQLAlchemyError, ImportError, OSError) as exc:
            # Only the exception's type: its text may quote the failing SQL.
            log.warning("CRM unavailable in %s: %s", method.__name__, type(exc).__name__)
            raise CRMUnavailable(f"CRM database unavailable ({type(exc).__name__})") from exc

    return wrapper  # type: ignore[return-value]


def _lost_a_race(exc: DBAPIError) -> bool:
    """A failure that a fresh attempt resolves: a unique key taken meanwhile,
    or PostgreSQL's serialization failure / deadlock victim."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "pgcode", None) in ("40001", "40P01")


def _customer_id(value: Any) -> int:
    """Customer ids arrive from Rasa slots: int, float (1.0) or text ("1")."""
    return validation.database_id(value, "系统参数不完整（customer_id），请稍后再试。")


def _optional_customer_id(value: Any) -> Optional[int]:
    return None if value is None else _customer_id(value)


def _order_options() -> tuple[Any, ...]:
    return (
        selectinload(Order.items).selectinload(OrderItem.product),
        selectinload(Order.returns),
    )


class CRM:
    """The customer domain as the bot sees it (see docs/crm-interface.md)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Optional[Callable[[], datetime]] = None,
        echo: bool = False,
        directory: Optional["CustomerDirectory"] = None,
    ) -> None:
        """``clock`` returns the current time (aware, or naive UTC); tests pin it.

        ``directory``: the company's own CRM (`crm_adapter.directory`, Zoho or
        REST). Profile changes, complaints and interaction notes are then also
        sent there through the outbox (see `_mirror`); None keeps everything
        in this database only.
        """
        self.url = url
        self.directory = directory
        self._outbox: Optional["Outbox"] = None
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._echo = echo
        self._engine: Optional[Engine] = None
        self._engine_lock = threading.Lock()
        self._live_signals: Optional[tuple[datetime, Signals]] = None
        self._analytics_run_cache: Optional[tuple[float, Optional[AnalyticsRun]]] = None

    @classmethod
    def from_env(cls, **kwargs: Any) -> "CRM":
        """``KEFU_CRM_URL``, and a remote directory when ``KEFU_CRM_DIRECTORY`` is zoho or rest."""
        if "directory" not in kwargs:
            from .directory import remote_directory_from_env

            kwargs["directory"] = remote_directory_from_env()
        return cls(config.crm_url(), **kwargs)

    @functools.cached_property
    def desk(self) -> "servicedesk.ServiceDesk":
        """The service desk (queue, staff, timeline) over this same database."""
        return servicedesk.ServiceDesk(self)

    @functools.cached_property
    def care(self) -> "Care":
        """Proactive care's send log and rules (crm_adapter.care) over this same database."""
        from .care import Care

        return Care(self)

    def __repr__(self) -> str:  # never show credentials in a URL
        return f"CRM({self.url.split('@')[-1]!r})"

    # -- plumbing ---------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """Created on first use, so constructing a CRM never touches the network."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = config.make_engine(self.url, echo=self._echo)
        return self._engine

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        if self._engine is not None:
            self._engine.dispose()

    def _now(self) -> datetime:
        return policy.utc_naive(self._clock())

    def _mirror(self, operation: str, values: dict[str, Any], key: str) -> None:
        """Send a write already committed here to the company CRM as well.

        Through the outbox, so an unreachable CRM delays it instead of failing
        the customer, and never raises: the write is safely kept here, and a
        refusal by the remote CRM becomes a dead letter for operators
        (``python -m crm_adapter.outbox status``).
        """
        if self.directory is None:
            return
        try:
            accepted = self._directory_outbox().submit(operation, values, key, raise_refusals=False)
            if not accepted.synced:
                log.info("%s kept in the outbox for the %s CRM", operation, self.directory.name)
        except (CRMError, SQLAlchemyError) as exc:
            log.warning("%s not sent to the %s CRM: %s", operation, self.directory.name, type(exc).__name__)

    def _directory_outbox(self) -> "Outbox":
        from .outbox import Outbox

        if self._outbox is None:
            self._outbox = Outbox(self.engine, self.directory, clock=self._clock)
        return self._outbox

    @_guarded
    def drain_outbox(self, limit: Optional[int] = None) -> Optional["DrainReport"]:
        """Deliver the writes the company CRM missed while it was down; None without one.

        `_mirror` delivers a write at once only when nothing older waits, so
        after an outage the backlog moves only when something drains it: the
        scheduler leader does, every ``KEFU_OUTBOX_DRAIN_SECONDS``.
        """
        if self.directory is None:
            return None
        return self._directory_outbox().drain(limit=limit)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, future=True) as session:
            yield session

    @contextmanager
    def _lookup(self) -> Iterator[Session]:
        """A read for the hot path (a lookup of one or two statements).

        On PostgreSQL its connection runs in autocommit: under READ COMMITTED
        each statement takes its own snapshot inside a transaction as well, so
        the answers are the same, without the BEGIN and ROLLBACK round trips
        (half of a profile lookup's). psycopg2 switches autocommit on the
        client, with no statement sent. SQLite keeps its read transaction.
        """
        if self.engine.dialect.name != "postgresql":
            with self._read() as session:
                yield session
            return
        with self.engine.connect() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            dbapi_connection.autocommit = True
            try:
                with Session(bind=connection, future=True) as session:
                    yield session
            finally:
                if not dbapi_connection.closed:
                    dbapi_connection.autocommit = False

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A write transaction; commits when the block ends without an exception."""
        with Session(self.engine, future=True, expire_on_commit=False) as session:
            session.connection(execution_options=config.WRITE_OPTIONS)
            yield session
            session.commit()

    @_guarded
    def run_unit(self, work: Callable[[Session, datetime], T], *, write: bool) -> T:
        """One transaction (or read) for a service over this database (the desk,
        the complaint log), guarded like the CRM's own methods: a database
        failure leaves as `CRMUnavailable`."""
        if write:
            with self._transaction() as session:
                return work(session, self._now())
        with self._read() as session:
            return work(session, self._now())

    def _write(
        self,
        kind: str,
        key: Any,
        work: Callable[[Session, datetime], T],
        *,
        customer_id: Optional[int] = None,
    ) -> T:
        """Run ``work`` once per idempotency key, atomically with storing its result.

        ``customer_id`` marks whose personal data the stored result may
        contain, so that erasing that customer can scrub it.
        """
        key = validation.label(key, "idempotency_key", 255)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._transaction() as session:
                    done = session.execute(
                        select(ProcessedOperation).where(ProcessedOperation.idempotency_key == key)
                    ).scalar_one_or_none()
                    if done is not None:
                        if done.kind != kind:
                            raise IdempotencyConflict(done.kind, kind)
                        return decode(done.result)
                    now = self._now()
                    result = work(session, now)
                    session.add(
                        ProcessedOperation(
                            idempotency_key=key,
                            kind=kind,
                            customer_id=customer_id,
                            result=encode(result),
                            created_at=now,
                        )
                    )
                    session.flush()
                return result
            except DBAPIError as exc:
                if attempt == _WRITE_ATTEMPTS or not _lost_a_race(exc):
                    raise
                log.info("retrying %s after a concurrent write", kind)
        raise AssertionError("unreachable")

    @staticmethod
    def _live_customer(session: Session, customer_id: Optional[int]) -> Optional[Customer]:
        if customer_id is None:
            return None
        return session.execute(
            select(Customer).where(Customer.id == customer_id, Customer.deleted.is_(False))
        ).scalar_one_or_none()

    def _require_customer(self, session: Session, customer_id: int) -> Customer:
        customer = self._live_customer(session, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id}")
        return customer

    @staticmethod
    def _customer_order(
        session: Session, customer_id: int, order_number: str, *, lock: bool = False
    ) -> Optional[Order]:
        query = (
            select(Order)
            .join(Customer, Customer.id == Order.customer_id)
            .where(
                Order.order_number == order_number,
                Order.customer_id == customer_id,
                Customer.deleted.is_(False),
            )
            .options(*_order_options())
        )
        if lock:
            query = query.with_for_update(of=Order)
        return session.execute(query).scalar_one_or_none()

    @staticmethod
    def _next_number(session: Session, column: Any, prefix: str, now: datetime) -> str:
        """``prefix + YYYYMMDD (China date) + 4-digit daily sequence``.

        Taken from the day's `NumberSequence` row under a row lock, inside the
        write transaction. The day's first number creates the row, starting
        after any number already in ``column`` (imported data); two writers
        creating it at once collide on its primary key and the loser's whole
        write is retried (see `_write`), by which time the row exists.
        """
        stem = f"{prefix}{policy.china_date(now):%Y%m%d}"
        counter = session.execute(
            select(NumberSequence).where(NumberSequence.stem == stem).with_for_update()
        ).scalar_one_or_none()
        if counter is None:
            highest = session.execute(
                select(column)
                .where(column.like(f"{stem}%"))
                .order_by(func.length(column).desc(), column.desc())
                .limit(1)
            ).scalar_one_or_none()
            counter = NumberSequence(stem=stem, last=int(highest[len(stem):]) if highest else 0)
            session.add(counter)
        counter.last += 1
        session.flush()
        return f"{stem}{counter.last:04d}"

    # -- schema -----------------------------------------------------------

    @_guarded
    def create_schema(self) -> None:
        """Bring the schema to the newest migration (see `crm_adapter.migrate`).

        Safe to call on every start: an up-to-date database costs one version
        lookup, and a database made by ``create_all`` before migrations is
        stamped and upgraded rather than re-created.
        """
        # Imported here, as in the privacy methods: the package imports this
        # module, and `python -m crm_adapter.migrate` must not find itself imported.
        from . import migrate

        migrate.upgrade(self.engine)

    @_guarded
    def is_empty(self) -> bool:
        """True when there are no tables yet or no customers in them."""
        if not inspect(self.engine).has_table(Customer.__tablename__):
            return True
        with self._read() as session:
            return session.execute(select(Customer.id).limit(1)).first() is None

    # -- identity and verification ----------------------------------------

    @_guarded
    def resolve_identity(self, channel: str, external_id: str) -> Optional[CustomerView]:
        """The customer this channel sender was bound to, if any."""
        channel = validation.label(channel, "channel", 32)
        external_id = validation.label(external_id, "external_id")
        with self._read() as session:
            customer = session.execute(
                select(Customer)
                .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
                .where(
                    ChannelIdentity.channel == channel,
                    ChannelIdentity.external_id == external_id,
                    Customer.deleted.is_(False),
                )
            ).scalar_one_or_none()
            return convert.customer_view(customer) if customer else None

    @_guarded
    def bind_identity(self, channel: str, external_id: str, customer_id: int, idempotency_key: str) -> None:
        """Remember who this sender is. A sender already bound to someone else
        is re-bound: they have just proved to be the new customer."""
        channel = validation.label(channel, "channel", 32)
        external_id = validation.label(external_id, "external_id")
        cid = _customer_id(customer_id)

        def work(session: Session, now: datetime) -> None:
            customer = self._require_customer(session, cid)
            identity = session.execute(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
                )
            ).scalar_one_or_none()
            if identity is None:
                session.add(
                    ChannelIdentity(
                        channel=channel,
                        external_id=external_id,
                        customer_id=customer.id,
                        verified_at=now,
                        created_at=now,
                    )
                )
            else:
                identity.customer_id = customer.id
                identity.verified_at = now
            log.info("identity on %s bound to customer %s", channel, customer.id)

        self._write("bind_identity", idempotency_key, work, customer_id=cid)

    @_guarded
    def verify_by_order(self, order_number: str, phone_last4: str) -> Optional[CustomerView]:
        """The order's customer if ``phone_last4`` matches their phone, else None.

        No oracle: an unknown order, a wrong guess and a locked order number
        all give None, and the comparison is constant-time. After
        `policy.VERIFY_MAX_FAILURES` wrong guesses within `policy.VERIFY_WINDOW`
        the order number is locked for the rest of the window, which makes
        walking through the 10,000 possible endings impractical.
        """
        number = validation.order_number(order_number)
        last4 = validation.phone_last4(phone_last4)
        with self._transaction() as session:
            now = self._now()
            failures = session.execute(
                select(func.count(VerificationAttempt.id)).where(
                    VerificationAttempt.order_number == number,
                    VerificationAttempt.succeeded.is_(False),
                    VerificationAttempt.created_at >= now - policy.VERIFY_WINDOW,
                )
            ).scalar_one()
            customer = session.execute(
                select(Customer)
                .join(Order, Order.customer_id == Customer.id)
                .where(Order.order_number == number, Customer.deleted.is_(False))
            ).scalar_one_or_none()
            actual = (customer.phone or "")[-4:] if customer is not None else "----"
            matched = hmac.compare_digest(actual.encode(), last4.encode()) and customer is not None
            if failures >= policy.VERIFY_MAX_FAILURES:
                log.info("verification refused: order number locked after repeated failures")
                return None
            session.execute(
                delete(VerificationAttempt).where(
                    VerificationAttempt.order_number == number,
                    VerificationAttempt.created_at < now - timedelta(days=1),
                )
            )
            session.add(VerificationAttempt(order_number=number, succeeded=matched, created_at=now))
            return convert.customer_view(customer) if matched and customer is not None else None

    @_guarded
    def get_customer(self, customer_id: int) -> CustomerView:
        """NotFound for an unknown or deleted customer; an erased one is shown
        anonymised (``erased`` True): the record holds no personal data any more."""
        cid = _customer_id(customer_id)
        with self._read() as session:
            customer = session.get(Customer, cid)
            if customer is None or (customer.deleted and customer.anonymised_at is None):
                raise NotFound(f"customer {cid}")
            return convert.customer_view(customer)

    # -- orders -----------------------------------------------------------

    def _orders(self, customer_id: int, limit: int) -> list[OrderView]:
        with self._read() as session:
            orders = session.execute(
                select(Order)
                .join(Customer, Customer.id == Order.customer_id)
                .where(Order.customer_id == customer_id, Customer.deleted.is_(False))
                .order_by(Order.created_at.desc(), Order.id.desc())
                .limit(limit)
                .options(*_order_options())
            ).scalars()
            now = self._now()
            return [convert.order_view(o, now) for o in orders]

    @_guarded
    def latest_order(self, customer_id: int) -> Optional[OrderView]:
        orders = self._orders(_customer_id(customer_id), 1)
        return orders[0] if orders else None

    @_guarded
    def get_order(self, customer_id: int, order_number: str) -> Optional[OrderView]:
        """None when the order does not exist or is not this customer's."""
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number)
        with self._read() as session:
            order = self._customer_order(session, cid, number)
            return convert.order_view(order, self._now()) if order else None

    @_guarded
    def recent_orders(self, customer_id: int, limit: int = 5) -> list[OrderView]:
        return self._orders(_customer_id(customer_id), validation.limit(limit, default=5))

    @_guarded
    def cancel_order(self, customer_id: int, order_number: str, idempotency_key: str) -> OrderChange:
        """Cancel while pending_payment or paid; outcome done/already/not_allowed/not_found."""
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number)

        def work(session: Session, now: datetime) -> OrderChange:
            order = self._customer_order(session, cid, number, lock=True)
            if order is None:
                return OrderChange("not_found", None)
            if order.status == "cancelled":
                return OrderChange("already", convert.order_view(order, now))
            if order.status not in policy.CANCELLABLE_STATUSES:
                return OrderChange("not_allowed", convert.order_view(order, now))
            if order.status in policy.SPENDING_STATUSES:
                # The money goes back, so it no longer counts as spent.
                customer = order.customer
                customer.total_spent = max(0.0, round((customer.total_spent or 0.0) - order.total, 2))
            order.status = "cancelled"
            order.cancelled_at = now
            order.updated_at = now
            session.flush()
            log.info("order cancelled for customer %s", cid)
            return OrderChange("done", convert.order_view(order, now))

        return self._write("cancel_order", idempotency_key, work, customer_id=cid)

    @_guarded
    def change_address(
        self, customer_id: int, order_number: str, new_address: str, idempotency_key: str
    ) -> OrderChange:
        """Change the delivery address while pending_payment or paid."""
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number)
        address = validation.address(new_address)

        def work(session: Session, now: datetime) -> OrderChange:
            order = self._customer_order(session, cid, number, lock=True)
            if order is None:
                return OrderChange("not_found", None)
            if order.address == address:
                return OrderChange("already", convert.order_view(order, now))
            if order.status not in policy.ADDRESS_CHANGEABLE_STATUSES:
                return OrderChange("not_allowed", convert.order_view(order, now))
            order.address = address
            order.updated_at = now
            session.flush()
            return OrderChange("done", convert.order_view(order, now))

        return self._write("change_address", idempotency_key, work, customer_id=cid)

    # -- returns and refunds ----------------------------------------------

    @_guarded
    def create_return(
        self,
        customer_id: int,
        order_number: str,
        reason: str,
        idempotency_key: str,
        sku: Optional[str] = None,
    ) -> ReturnView:
        """A return request for a delivered order within the return window.

        ``sku`` (or the product's name) returns one line of the order; None
        returns the whole order. Refusals are `InvalidInput` explaining why.
        """
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number)
        reason_text = validation.free_text(reason, max_len=500, required=True, message_zh=MSG_RETURN_REASON)
        wanted = unicodedata.normalize("NFKC", sku).strip() if sku else None

        def work(session: Session, now: datetime) -> ReturnView:
            order = self._customer_order(session, cid, number, lock=True)
            if order is None:
                raise InvalidInput(MSG_ORDER_NOT_FOUND)
            self._check_returnable(order, now)
            refunded = [r for r in order.returns if r.status == "refunded"]
            if wanted:
                item = next(
                    (i for i in order.items if wanted.upper() == i.sku.upper() or wanted == i.name),
                    None,
                )
                if item is None:
                    raise InvalidInput("这个订单里没有找到这件商品，请确认一下要退的是哪一件。")
                if any(r.sku == item.sku for r in refunded):
                    raise InvalidInput(f"“{item.name}”已经退过款了。")
                item_sku: Optional[str] = item.sku
                amount = round(item.unit_price * item.quantity, 2)
            else:
                item_sku = None
                amount = round(order.total - sum(r.refund_amount for r in refunded), 2)
            request = ReturnRequest(
                return_number=self._next_number(session, ReturnRequest.return_number, "R", now),
                order=order,
                customer_id=cid,
                sku=item_sku,
                reason=reason_text,
                status="requested",
                refund_amount=amount,
                refund_eta=None,  # known once the warehouse has the goods back
                created_at=now,
                updated_at=now,
            )
            session.add(request)
            session.flush()
            log.info("return %s requested by customer %s", request.return_number, cid)
            return convert.return_view(request)

        return self._write("create_return", idempotency_key, work, customer_id=cid)

    @staticmethod
    def _check_returnable(order: Order, now: datetime) -> None:
        if order.status == "returned":
            raise InvalidInput("这个订单已经办理过退货退款了。")
        if order.status in ("pending_payment", "paid"):
            raise InvalidInput("这个订单还没有发货，不需要退货，可以直接取消订单。")
        if order.status != "delivered":
            label = ORDER_STATUS_LABELS[order.status]
            raise InvalidInput(f"这个订单目前是“{label}”状态，签收之后才能申请退货。")
        deadline = policy.return_deadline(order.delivered_at)
        if deadline is not None and policy.china_date(now) > deadline:
            delivered = policy.china_date(order.delivered_at)
            raise InvalidInput(
                f"这个订单在{delivered.month}月{delivered.day}日签收，已超过签收后"
                f"{policy.RETURN_WINDOW_DAYS}天的退货期限，暂时无法申请退货。"
                "如果是质量问题，可以转人工客服为您办理保修。"
            )
        open_returns = [r for r in order.returns if r.status in OPEN_RETURN_STATUSES]
        if open_returns:
            current = open_returns[0]
            raise InvalidInput(
                f"这个订单已经有一个退货申请在处理中（{current.return_number}，"
                f"{RETURN_STATUS_LABELS[current.status]}），不用重复申请。"
            )

    @_guarded
    def returns_for_customer(self, customer_id: int, order_number: Optional[str] = None) -> list[ReturnView]:
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number) if order_number else None
        with self._read() as session:
            query = (
                select(ReturnRequest)
                .join(Order, Order.id == ReturnRequest.order_id)
                .where(ReturnRequest.customer_id == cid, Order.customer_id == cid)
                .order_by(ReturnRequest.created_at.desc(), ReturnRequest.id.desc())
                .options(selectinload(ReturnRequest.order).selectinload(Order.items))
            )
            if number:
                query = query.where(Order.order_number == number)
            return [convert.return_view(r) for r in session.execute(query).scalars()]

    # -- membership and profile -------------------------------------------

    @_guarded
    def membership(self, customer_id: int) -> MembershipView:
        cid = _customer_id(customer_id)
        with self._read() as session:
            customer = self._require_customer(session, cid)
            now = self._now()
            coupons = session.execute(
                select(Coupon)
                .where(Coupon.customer_id == cid, Coupon.used_at.is_(None), Coupon.expires_at > now)
                .order_by(Coupon.expires_at, Coupon.code)
            ).scalars()
            today = policy.china_date(now)
            expire_at = customer.points_expire_at
            expiring = min(customer.points_expiring or 0, customer.points or 0)
            if expire_at is None or expire_at < today or expiring <= 0:
                expire_at, expiring = None, 0
            spent = round(customer.total_spent or 0.0, 2)
            next_name, missing = policy.next_level_after(customer.member_level, spent)
            return MembershipView(
                customer_id=customer.id,
                level=customer.member_level,
                points=customer.points or 0,
                points_value_yuan=round((customer.points or 0) / policy.POINTS_PER_YUAN, 2),
                points_expiring=expiring,
                points_expire_at=expire_at,
                total_spent=spent,
                next_level=next_name,
                spend_to_next_level=missing,
                coupons=tuple(convert.coupon_view(c, now) for c in coupons),
            )

    @_guarded
    def update_profile(self, customer_id: int, field: str, value: Any, idempotency_key: str) -> CustomerView:
        """Change one profile field after validating it (Chinese message on refusal)."""
        cid = _customer_id(customer_id)
        field = validation.choice(field, PROFILE_FIELDS, MSG_PROFILE_FIELD)
        new_value = validation.profile_value(field, value, policy.china_date(self._now()))

        def work(session: Session, now: datetime) -> CustomerView:
            customer = self._require_customer(session, cid)
            if field == "phone":
                taken = session.execute(
                    select(Customer.id).where(Customer.phone == new_value, Customer.id != cid)
                ).first()
                if taken is not None:
                    raise InvalidInput(MSG_PHONE_TAKEN)
            setattr(customer, _PROFILE_COLUMNS[field], new_value)
            session.flush()
            log.info("customer %s updated %s", cid, field)
            return convert.customer_view(customer)

        view = self._write("update_profile", idempotency_key, work, customer_id=cid)
        self._mirror("update_profile", {"customer_id": cid, "field": field, "value": new_value}, idempotency_key)
        return view

    @_guarded
    def set_marketing_consent(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        granted: bool,
        source: str,
        idempotency_key: str,
    ) -> None:
        """Record a consent decision the customer made (kept for the chat's 「退订」).

        Same as `set_consent` with ``recorded_by="customer"``; ``channel`` may
        be "all" to decide for every channel at once.
        """
        self._record_consent(
            "set_marketing_consent", customer_id, channel, purpose, granted, source, "customer", idempotency_key
        )

    # -- privacy: consents, quiet hours, export, erasure ------------------

    @_guarded
    def set_consent(
        self,
        customer_id: int,
        channel: str,
        purpose: str,
        granted: bool,
        source: str,
        idempotency_key: str,
        *,
        recorded_by: str = "customer",
    ) -> ConsentView:
        """Record one decision (a new history row) for channel (or "all") and purpose.

        ``recorded_by`` is who made it: "customer", "agent:<id>", "system".
        """
        return self._record_consent(
            "set_consent", customer_id, channel, purpose, granted, source, recorded_by, idempotency_key
        )

    def _record_consent(
        self,
        kind: str,
        customer_id: Any,
        channel: Any,
        purpose: Any,
        granted: Any,
        source: Any,
        recorded_by: Any,
        idempotency_key: str,
    ) -> ConsentView:
        cid = _customer_id(customer_id)
        channel = consent.channel(channel, allow_all=True)
        purpose = consent.purpose(purpose)
        granted = consent.granted(granted)
        source = validation.label(source, "source", 64)
        recorded_by = validation.label(recorded_by, "recorded_by", 64)

        def work(session: Session, now: datetime) -> ConsentView:
            self._require_customer(session, cid)
            row = Consent(customer_id=cid, channel=channel, purpose=purpose, granted=granted,
                          source=source, recorded_by=recorded_by, created_at=now)
            session.add(row)
            session.flush()
            log.info("consent %s/%s=%s for customer %s by %s", channel, purpose, granted, cid, recorded_by)
            return convert.consent_view(cid, channel, purpose, row)

        return self._write(kind, idempotency_key, work, customer_id=cid)

    @staticmethod
    def _consent_rows(session: Session, customer_id: int, purpose: Optional[str] = None) -> list[Consent]:
        query = select(Consent).where(Consent.customer_id == customer_id)
        if purpose is not None:
            query = query.where(Consent.purpose == purpose)
        return list(session.execute(query.order_by(Consent.created_at, Consent.id)).scalars())

    @staticmethod
    def _in_force(rows: list[Consent], channel: str, purpose: str) -> Optional[Consent]:
        decisions = [consent.Decision(r.channel, r.purpose, r.granted, r.created_at, r.id) for r in rows]
        chosen = consent.current(decisions, channel, purpose)
        return next(r for r in rows if r.id == chosen.row_id) if chosen else None

    @_guarded
    def consent_status(self, customer_id: int, channel: str, purpose: str) -> ConsentView:
        """The decision in force for one contact channel (not "all") and purpose,
        or the default when none was made (service yes, marketing no)."""
        cid = _customer_id(customer_id)
        channel = consent.channel(channel, allow_all=False)
        purpose = consent.purpose(purpose)
        with self._read() as session:
            self._require_customer(session, cid)
            row = self._in_force(self._consent_rows(session, cid, purpose), channel, purpose)
            return convert.consent_view(cid, channel, purpose, row)

    @_guarded
    def consent_history(self, customer_id: int) -> list[ConsentView]:
        """Every decision ever recorded, oldest first (who, when, where, what)."""
        cid = _customer_id(customer_id)
        with self._read() as session:
            self._require_customer(session, cid)
            return [convert.consent_view(cid, r.channel, r.purpose, r) for r in self._consent_rows(session, cid)]

    @_guarded
    def set_quiet_hours(
        self,
        customer_id: int,
        start: Any,
        end: Any,
        idempotency_key: str,
        timezone_name: Optional[str] = None,
    ) -> QuietHoursView:
        """Set the customer's quiet hours ("22:00", "8:30" or ``time``), local time in
        ``timezone_name`` (default: the customer's). ``start == end``: no quiet hours."""
        cid = _customer_id(customer_id)
        quiet_start, quiet_end = consent.wall_time(start), consent.wall_time(end)
        zone = consent.zone(timezone_name) if timezone_name is not None else None

        def work(session: Session, now: datetime) -> QuietHoursView:
            customer = self._require_customer(session, cid)
            if zone is not None:
                customer.timezone = zone
            preference = session.get(ContactPreference, cid)
            if preference is None:
                preference = ContactPreference(customer_id=cid)
                session.add(preference)
            preference.quiet_start, preference.quiet_end, preference.updated_at = quiet_start, quiet_end, now
            session.flush()
            return convert.quiet_hours_view(customer, preference)

        return self._write("set_quiet_hours", idempotency_key, work, customer_id=cid)

    @_guarded
    def quiet_hours(self, customer_id: int) -> QuietHoursView:
        cid = _customer_id(customer_id)
        with self._read() as session:
            customer = self._require_customer(session, cid)
            return convert.quiet_hours_view(customer, session.get(ContactPreference, cid))

    @_guarded
    def may_contact(
        self, customer_id: int, channel: str, purpose: str, at: Optional[datetime] = None
    ) -> bool:
        """Whether the shop may reach out to this customer on ``channel`` for
        ``purpose`` at ``at`` (default now; naive means UTC): the consent in
        force allows it and it is not the customer's quiet hours.

        False, not NotFound, for a customer who does not exist or was erased:
        callers ask about many customers and none of those may be contacted.
        """
        cid = _customer_id(customer_id)
        channel = consent.channel(channel, allow_all=False)
        purpose = consent.purpose(purpose)
        moment = consent.moment(at) if at is not None else self._clock()
        with self._read() as session:
            customer = self._live_customer(session, cid)
            if customer is None:
                return False
            row = self._in_force(self._consent_rows(session, cid, purpose), channel, purpose)
            if not consent.is_granted(_decision(row), purpose):
                return False
            hours = convert.quiet_hours_view(customer, session.get(ContactPreference, cid))
            local = consent.local_time(moment, hours.timezone)
            return not consent.in_quiet_hours(local, hours.start, hours.end)

    @_guarded
    def export_customer(self, customer_id: int, *, masked: bool = False) -> dict[str, Any]:
        """Everything held about one customer as JSON-ready data (see crm_adapter.privacy).

        Raw by default: it is the customer's own copy. ``masked`` for anyone
        else. Works for an erased customer too (showing what is left).
        """
        from . import privacy

        cid = _customer_id(customer_id)
        with self._read() as session:
            customer = session.get(Customer, cid)
            if customer is None:
                raise NotFound(f"customer {cid}")
            return privacy.export_data(session, customer, self._now(), masked=bool(masked))

    @_guarded
    def erase_customer(self, customer_id: int, idempotency_key: str) -> ErasureReport:
        """Anonymise the customer (see crm_adapter.privacy); idempotent, also across keys:
        erasing an erased customer changes nothing and reports zero."""
        from . import privacy

        cid = _customer_id(customer_id)

        def work(session: Session, now: datetime) -> ErasureReport:
            customer = session.execute(
                select(Customer).where(Customer.id == cid).with_for_update()
            ).scalar_one_or_none()
            if customer is None:
                raise NotFound(f"customer {cid}")
            counts = privacy.erase(session, customer, now)
            return ErasureReport(
                customer_id=cid, erased_at=policy.to_china(customer.anonymised_at), **counts
            )

        return self._write(privacy.ERASURE_KIND, idempotency_key, work, customer_id=cid)

    # -- catalogue and recommendations ------------------------------------

    @_guarded
    def list_products(self) -> list[ProductView]:
        with self._read() as session:
            products = session.execute(
                select(Product).where(Product.active.is_(True)).order_by(Product.sku)
            ).scalars()
            return [convert.product_view(p) for p in products]

    @_guarded
    def find_products(
        self, text: Optional[str] = None, category: Optional[str] = None, limit: int = 5
    ) -> list[ProductView]:
        """Products named (by name, alias or SKU) inside free text, best match first.

        A fragment of a name also matches ("耳机" finds 声浪降噪耳机). When no
        product is named, a category word in the text ("有什么宠物用品")
        selects that category. An unknown ``category`` matches nothing.
        """
        count = validation.limit(limit, default=5)
        wanted_category = canonical_category(category) if category else None
        if category and wanted_category is None:
            return []
        needle = unicodedata.normalize("NFKC", text or "").strip()
        with self._read() as session:
            query = select(Product).where(Product.active.is_(True)).order_by(Product.sku)
            if wanted_category:
                query = query.where(Product.category == wanted_category)
            products = list(session.execute(query).scalars())
            if not needle:
                return [convert.product_view(p) for p in products[:count]]
            scored: list[tuple[float, str, Product]] = []
            for product in products:
                terms = (product.name, product.sku, *convert.aliases(product))
                score = max((len(t) for t in terms if t and t.upper() in needle.upper()), default=0)
                if not score and len(needle) >= 2 and needle in product.name:
                    score = len(needle) / 2
                if score:
                    scored.append((score, product.sku, product))
            if not scored and wanted_category is None:
                named = _category_in_text(needle)
                if named:
                    scored = [(1.0, p.sku, p) for p in products if p.category == named]
            scored.sort(key=lambda entry: (-entry[0], entry[1]))
            return [convert.product_view(p) for _, _, p in scored[:count]]

    @_guarded
    def recommend(
        self, customer_id: Optional[int] = None, limit: int = 3, category: Optional[str] = None
    ) -> list[ProductView]:
        """Products for this customer (see `crm_adapter.recommend`); popular ones
        for an unknown (None or no longer existing) customer."""
        cid = _optional_customer_id(customer_id)
        count = validation.limit(limit, default=3)
        wanted_category = canonical_category(category) if category else None
        if category and wanted_category is None:
            return []
        with self._read() as session:
            customer = self._live_customer(session, cid)
            now = self._now()
            products = recommend_products(
                session, customer.id if customer else None, count, wanted_category, now,
                self._signals(session, now),
            )
            return [convert.product_view(p) for p in products]

    def _signals(self, session: Session, now: datetime) -> Signals:
        """The refresh's product signals; before the first refresh, live ones
        (see `recommend.live_signals`), recomputed at most once per clock hour
        (a benign race between threads only computes them twice)."""
        found = stored_signals(session)
        if found is not None:
            return found
        hour = now.replace(minute=0, second=0, microsecond=0)
        cached = self._live_signals
        if cached is None or cached[0] != hour:
            cached = (hour, live_signals(session, now))
            self._live_signals = cached
        return cached[1]

    # -- retention --------------------------------------------------------

    @_guarded
    def retention_offer(
        self,
        customer_id: int,
        channel: str,
        idempotency_key: str,
        offer: Optional[RetentionOffer] = None,
    ) -> Optional[CouponView]:
        """A win-back coupon for a drifting customer (see `crm_adapter.retention`).

        Given only when an offer is configured (``offer`` or the environment),
        the customer's lifecycle stage is at-risk or churned, they agreed to
        marketing on this channel, and they got no such coupon within the
        offer's period; otherwise None.  One coupon per idempotency key.
        """
        cid = _customer_id(customer_id)
        offer = offer or offer_from_env()
        contact_channel = CONSENT_CHANNEL_OF.get(str(channel or "").strip().lower())
        if offer is None or contact_channel is None:
            return None

        def work(session: Session, now: datetime) -> Optional[CouponView]:
            customer = self._require_customer(session, cid)
            profile = analytics_profile(session, customer, now, self.analytics_settings,
                                        self._latest_analytics_run(session))
            if profile.stage not in DRIFTING_STAGES:
                return None
            rows = self._consent_rows(session, cid, "marketing")
            in_force = self._in_force(rows, contact_channel, "marketing")
            if in_force is None or not in_force.granted:
                return None
            coupon = self._grant_coupon_once(session, cid, offer, "RC", now)
            if coupon is None:
                return None
            log.info("retention coupon %s for customer %s", coupon.code, cid)
            return convert.coupon_view(coupon, now)

        return self._write("retention_offer", idempotency_key, work, customer_id=cid)

    # -- tickets ----------------------------------------------------------

    @classmethod
    def _grant_coupon_once(cls, session: Session, customer_id: int, offer: RetentionOffer, prefix: str,
                           now: datetime) -> Optional[Coupon]:
        """A coupon from ``offer``, unless the customer got one with its title within
        ``offer.every_days`` (then None); shared by win-back and care campaigns."""
        recent = session.execute(
            select(Coupon.id).where(
                Coupon.customer_id == customer_id,
                Coupon.title == offer.title,
                Coupon.created_at >= now - timedelta(days=offer.every_days),
            ).limit(1)
        ).scalar_one_or_none()
        if recent is not None:
            return None
        coupon = Coupon(
            code=cls._next_number(session, Coupon.code, prefix, now),
            customer_id=customer_id, title=offer.title, amount=offer.amount, min_spend=offer.min_spend,
            expires_at=now + timedelta(days=offer.valid_days), created_at=now,
        )
        session.add(coupon)
        session.flush()
        return coupon

    @_guarded
    def create_payment_ticket(
        self,
        customer_id: int,
        problem: str,
        description: str,
        idempotency_key: str,
        order_number: Optional[str] = None,
    ) -> TicketView:
        cid = _customer_id(customer_id)
        problem = validation.choice(problem, PAYMENT_PROBLEMS, MSG_PAYMENT_PROBLEM)
        text = validation.free_text(description, max_len=1000, required=False, message_zh=MSG_DESCRIPTION)
        number = validation.order_number(order_number) if order_number else None

        def work(session: Session, now: datetime) -> TicketView:
            self._require_customer(session, cid)
            order = None
            if number:
                order = self._customer_order(session, cid, number)
                if order is None:
                    raise InvalidInput(MSG_ORDER_NOT_FOUND)
            ticket = PaymentTicket(
                ticket_number=self._next_number(session, PaymentTicket.ticket_number, "PT", now),
                customer_id=cid,
                order=order,
                problem=problem,
                description=mask_text(text),
                status="open",
                created_at=now,
            )
            session.add(ticket)
            session.flush()
            log.info("payment ticket %s (%s) for customer %s", ticket.ticket_number, problem, cid)
            return convert.ticket_view(ticket)

        return self._write("create_payment_ticket", idempotency_key, work, customer_id=cid)

    @_guarded
    def create_invoice_request(
        self,
        customer_id: int,
        order_number: str,
        title: str,
        tax_number: Optional[str],
        email: str,
        idempotency_key: str,
    ) -> InvoiceRequestView:
        """An e-invoice request for a paid order; personal invoices (抬头“个人”) need no 税号."""
        cid = _customer_id(customer_id)
        number = validation.order_number(order_number)
        invoice_title = validation.invoice_title(title)
        tax = validation.tax_number(tax_number, invoice_title)
        address = validation.email(email)

        def work(session: Session, now: datetime) -> InvoiceRequestView:
            self._require_customer(session, cid)
            order = self._customer_order(session, cid, number, lock=True)
            if order is None:
                raise InvalidInput(MSG_ORDER_NOT_FOUND)
            if order.status == "pending_payment":
                raise InvalidInput("这个订单还没有付款，付款后才能开发票。")
            if order.status not in policy.INVOICEABLE_STATUSES:
                raise InvalidInput(f"这个订单{ORDER_STATUS_LABELS[order.status]}，无法开具发票。")
            existing = session.execute(
                select(InvoiceRequest).where(
                    InvoiceRequest.order_id == order.id, InvoiceRequest.status != "rejected"
                )
            ).scalars().first()
            if existing is not None:
                raise InvalidInput(
                    f"这个订单已经申请过发票（{existing.request_number}），开好后会发送到您的邮箱。"
                )
            request = InvoiceRequest(
                request_number=self._next_number(session, InvoiceRequest.request_number, "FP", now),
                customer_id=cid,
                order=order,
                title=invoice_title,
                tax_number=tax,
                email=address,
                status="requested",
                created_at=now,
            )
            session.add(request)
            session.flush()
            return convert.invoice_view(request)

        return self._write("create_invoice_request", idempotency_key, work, customer_id=cid)

    @_guarded
    def create_complaint(
        self,
        customer_id: Optional[int],
        category: Optional[str],
        description: str,
        channel: str,
        sender_id: str,
        idempotency_key: str,
        order_number: Optional[str] = None,
        *,
        contact_phone: Optional[str] = None,
    ) -> ComplaintView:
        """Record a complaint: severity by `policy.complaint_severity`, status open, SLA set.

        An order number is linked when it is the customer's own; otherwise it
        is kept as reported text, so the complaint is never refused over it.
        A missing category is "other". ``contact_phone`` (an extension of the
        interface the actions use) is a call-back number, typically from a
        complainer who is not verified; it is validated like a profile phone.
        """
        cid = _optional_customer_id(customer_id)
        category = (
            validation.choice(category, COMPLAINT_CATEGORIES, MSG_COMPLAINT_CATEGORY) if category else "other"
        )
        text = validation.free_text(
            description, max_len=2000, required=True, message_zh=MSG_COMPLAINT_DESCRIPTION
        )
        channel = validation.label(channel, "channel", 32)
        sender_id = validation.label(sender_id, "sender_id")
        number = validation.order_number(order_number) if order_number else None
        callback = validation.phone(contact_phone) if contact_phone else None

        def work(session: Session, now: datetime) -> ComplaintView:
            customer = self._live_customer(session, cid)
            order = self._customer_order(session, customer.id, number) if customer and number else None
            severity = policy.complaint_severity(category, text, customer.tier if customer else None)
            complaint = Complaint(
                ticket_number=self._next_number(session, Complaint.ticket_number, "TS", now),
                customer_id=customer.id if customer else None,
                order=order,
                reported_order_number=number,
                contact_phone=callback,
                category=category,
                description=mask_text(text),
                severity=severity,
                status="open",
                channel=channel,
                sender_id=sender_id,
                sla_due_at=policy.sla_due(severity, now),
                created_at=now,
            )
            session.add(complaint)
            session.flush()
            log.info(
                "complaint %s (%s, %s) for customer %s",
                complaint.ticket_number, category, severity, complaint.customer_id,
            )
            return convert.complaint_view(complaint)

        view = self._write("create_complaint", idempotency_key, work, customer_id=cid)
        self._mirror(
            "create_case",
            {"customer_id": cid, "complaint": view, "sender_id": sender_id, "contact_phone": callback},
            idempotency_key,
        )
        return view

    @_guarded
    def complaints_for_customer(self, customer_id: int, open_only: bool = False) -> list[ComplaintView]:
        cid = _customer_id(customer_id)
        with self._read() as session:
            query = (
                select(Complaint)
                .where(Complaint.customer_id == cid)
                .order_by(Complaint.created_at.desc(), Complaint.id.desc())
                .options(selectinload(Complaint.order))
            )
            if open_only:
                query = query.where(Complaint.status.in_(OPEN_COMPLAINT_STATUSES))
            return [convert.complaint_view(c) for c in session.execute(query).scalars()]

    @_guarded
    def get_complaint(self, customer_id: int, ticket_number: str) -> Optional[ComplaintView]:
        """None when the ticket does not exist or is not this customer's."""
        cid = _customer_id(customer_id)
        number = validation.ticket_number(ticket_number)
        with self._read() as session:
            complaint = session.execute(
                select(Complaint).where(Complaint.ticket_number == number, Complaint.customer_id == cid)
            ).scalar_one_or_none()
            return convert.complaint_view(complaint) if complaint else None

    @_guarded
    def create_escalation(
        self,
        customer_id: Optional[int],
        channel: str,
        sender_id: str,
        reason: str,
        idempotency_key: str,
        complaint_ticket: Optional[str] = None,
        callback_phone: Optional[str] = None,
        callback: bool = False,
    ) -> EscalationView:
        """Queue the conversation for a human agent (status pending).

        One active escalation per conversation: asking again while one is
        pending or open returns that one (raised to high priority and linked
        to the complaint if the new request warrants it), so agents never see
        the same chat twice in their queue.

        ``callback``: asked while the desk is closed; staff call back (on
        ``callback_phone``, else the customer's own) or write when it opens.
        The SLA clocks (`servicedesk.sla_due`) start when the desk opens.
        """
        cid = _optional_customer_id(customer_id)
        channel = validation.label(channel, "channel", 32)
        sender_id = validation.label(sender_id, "sender_id")
        reason_text = validation.free_text(reason, max_len=500, required=True, message_zh=MSG_ESCALATION_REASON)
        ticket = validation.ticket_number(complaint_ticket) if complaint_ticket else None
        phone = validation.phone(callback_phone) if callback_phone else None

        def work(session: Session, now: datetime) -> EscalationView:
            customer = self._live_customer(session, cid)
            if callback and phone is None and customer is not None:
                callback_to = customer.phone
            else:
                callback_to = phone
            complaint = None
            if ticket:
                owner = (
                    Complaint.customer_id == customer.id
                    if customer
                    else (Complaint.channel == channel) & (Complaint.sender_id == sender_id)
                )
                complaint = session.execute(
                    select(Complaint).where(Complaint.ticket_number == ticket, owner)
                ).scalar_one_or_none()
                if complaint is None:
                    raise InvalidInput(MSG_COMPLAINT_NOT_FOUND)
            priority = policy.escalation_priority(
                customer.tier if customer else None,
                reason_text,
                complaint.severity if complaint else None,
            )
            escalation = session.execute(
                select(Escalation)
                .where(
                    Escalation.channel == channel,
                    Escalation.sender_id == sender_id,
                    Escalation.status.in_(ACTIVE_ESCALATION_STATUSES),
                )
                .order_by(Escalation.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if escalation is None:
                first_due, resolve_due = servicedesk.sla_due(priority, now)
                escalation = Escalation(
                    customer_id=customer.id if customer else None,
                    complaint=complaint,
                    status="pending",
                    priority=priority,
                    reason=mask_text(reason_text),
                    channel=channel,
                    sender_id=sender_id,
                    created_at=now,
                    updated_at=now,
                    first_response_due_at=first_due,
                    resolve_due_at=resolve_due,
                    callback=bool(callback),
                    callback_phone=callback_to,
                )
                session.add(escalation)
                session.flush()
                session.add(EscalationEvent(escalation_id=escalation.id, kind="created", actor="bot",
                                            body=escalation.reason, created_at=now))
            else:
                raised = priority == "high" and escalation.priority != "high"
                if raised:
                    escalation.priority = "high"
                    escalation.first_response_due_at, escalation.resolve_due_at = servicedesk.sla_due(
                        "high", escalation.created_at)
                if complaint is not None and escalation.complaint is None:
                    escalation.complaint = complaint
                if customer is not None and escalation.customer_id is None:
                    escalation.customer_id = customer.id
                if escalation.callback and not callback:  # asked again while the desk is open
                    escalation.callback = False
                escalation.updated_at = now
                session.add(EscalationEvent(escalation_id=escalation.id, kind="raised", actor="bot",
                                            body=mask_text(reason_text), created_at=now))
            session.flush()
            log.info("escalation %s (%s) on %s", escalation.id, escalation.priority, channel)
            return convert.escalation_view(escalation)

        return self._write("create_escalation", idempotency_key, work, customer_id=cid)

    @_guarded
    def record_csat(
        self,
        customer_id: Optional[int],
        channel: str,
        sender_id: str,
        score: int,
        idempotency_key: str,
        comment: Optional[str] = None,
        escalation_id: Optional[int] = None,
    ) -> None:
        """A satisfaction rating, 1 (very unhappy) to 5 (very happy).

        ``escalation_id``: the rating answers the question asked after a human
        agent resolved that chat (of this same conversation); it is kept on
        the escalation too, for the desk's and managers' figures.
        """
        value = _whole_number(score, 1, 5, MSG_CSAT_SCORE)
        rated = None if escalation_id is None else _customer_id(escalation_id)

        def also(session: Session, now: datetime) -> None:
            if rated is None:
                return
            escalation = session.get(Escalation, rated)
            if escalation is None or escalation.channel != channel or escalation.sender_id != sender_id:
                return  # never rate someone else's chat
            escalation.csat_score = value
            session.add(EscalationEvent(escalation_id=escalation.id, kind="csat", actor="customer",
                                        body=str(value), created_at=now))

        self._record_rating(CsatRating, "record_csat", customer_id, channel, sender_id,
                            value, idempotency_key, comment, also=also)

    def _record_rating(
        self,
        model: Any,
        kind: str,
        customer_id: Optional[int],
        channel: str,
        sender_id: str,
        value: int,
        idempotency_key: str,
        comment: Optional[str],
        also: Optional[Callable[[Session, datetime], None]] = None,
    ) -> None:
        """Store one CSAT or NPS answer (same columns), once per idempotency key."""
        cid = _optional_customer_id(customer_id)
        channel = validation.label(channel, "channel", 32)
        sender_id = validation.label(sender_id, "sender_id")
        remark = mask_text(validation.prose(comment))[:_COMMENT_MAX] if comment else None

        def work(session: Session, now: datetime) -> None:
            customer = self._live_customer(session, cid)
            session.add(
                model(
                    customer_id=customer.id if customer else None,
                    channel=channel,
                    sender_id=sender_id,
                    score=value,
                    comment=remark or None,
                    created_at=now,
                )
            )
            if also is not None:
                also(session, now)

        self._write(kind, idempotency_key, work, customer_id=cid)

    @_guarded
    def record_interaction(
        self, customer_id: Optional[int], channel: str, sender_id: str, kind: str, summary: str
    ) -> None:
        """One line of contact history; not idempotent (the interface gives no key),
        so callers record an interaction once per handled turn."""
        cid = _optional_customer_id(customer_id)
        channel = validation.label(channel, "channel", 32)
        sender_id = validation.label(sender_id, "sender_id")
        kind = validation.label(kind, "kind", 32)
        text = mask_text(validation.prose(summary))[:_SUMMARY_MAX]
        with self._transaction() as session:
            customer = self._live_customer(session, cid)
            row = Interaction(
                customer_id=customer.id if customer else None,
                channel=channel,
                sender_id=sender_id,
                kind=kind,
                summary=text,
                created_at=self._now(),
            )
            session.add(row)
            session.flush()
            note_key = f"interaction:{row.id}"  # the interface gives no key; the row's id is one
        if cid is not None and text:
            self._mirror(
                "add_note",
                {"customer_id": cid, "kind": kind, "summary": text, "channel": channel, "sender_id": sender_id},
                note_key,
            )

    # -- analytics (crm_adapter.analytics; docs/analytics.md) ---------------

    @property
    def analytics_settings(self) -> "AnalyticsSettings":
        """The analytics' parameters; assign a `Settings` to change them."""
        return getattr(self, "_analytics_settings", None) or DEFAULT_ANALYTICS_SETTINGS

    @analytics_settings.setter
    def analytics_settings(self, value: "AnalyticsSettings") -> None:
        self._analytics_settings = value

    @_guarded
    def customer_profile(self, customer_id: int) -> CustomerProfileView:
        """Tier, lifecycle stage, CLV, churn risk and RFM for routing and the desk.

        From the stored metrics (stage and churn risk re-derived for now);
        computed on the fly when no refresh has covered the customer yet.
        NotFound for unknown or deleted customers.
        """
        cid = _customer_id(customer_id)
        try:
            profile = self._profile_lookup(cid)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The server dropped a pooled connection (a restart): SQLAlchemy has
            # discarded the pool, so one more try reaches the server if it is back.
            profile = self._profile_lookup(cid)
        if profile is None:
            raise NotFound(f"customer {cid}")
        return profile

    def _profile_lookup(self, cid: int) -> Optional[CustomerProfileView]:
        with self._lookup() as session:
            return live_analytics_profile(session, cid, self._now(), self.analytics_settings,
                                          self._latest_analytics_run(session))

    def _latest_analytics_run(self, session: Session) -> Optional[AnalyticsRun]:
        """The latest analytics run (its cut points and population interval), read
        at most once a minute: profile lookups are on the hot path of every new
        conversation, refreshes happen hourly or nightly.  A refresh through this
        CRM forgets it at once; one run elsewhere is seen within a minute."""
        cached = self._analytics_run_cache
        if cached is not None and time.monotonic() - cached[0] < ANALYTICS_RUN_CACHE_S:
            return cached[1]
        run = analytics_last_run(session)
        if run is not None:
            session.expunge(run)  # keep its loaded columns after the session closes
        self._analytics_run_cache = (time.monotonic(), run)
        return run

    @_guarded
    def kpis(self, start: datetime, end: datetime) -> KpiReport:
        """The desk's KPIs over ``[start, end)`` (aware, or naive UTC); see docs/analytics.md."""
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise InvalidInput("统计区间不正确：开始时间必须早于结束时间。")
        with self._read() as session:
            return kpi_report(session, policy.utc_naive(start), policy.utc_naive(end))

    @_guarded
    def refresh_analytics(self, *, full: bool = False, strict: bool = False) -> RefreshResult:
        """Recompute the stored customer model (incrementally unless ``full``)."""
        self._analytics_run_cache = None
        return analytics_refresh(
            lambda: Session(self.engine, future=True), self._now(),
            full=full, strict=strict, settings=self.analytics_settings,
        )

    @_guarded
    def record_nps(
        self,
        customer_id: Optional[int],
        channel: str,
        sender_id: str,
        score: int,
        idempotency_key: str,
        comment: Optional[str] = None,
    ) -> None:
        """A Net Promoter answer, 0 (would not recommend) to 10 (certainly would)."""
        self._record_rating(NpsResponse, "record_nps", customer_id, channel, sender_id,
                            _whole_number(score, 0, 10, MSG_NPS_SCORE), idempotency_key, comment)


def _decision(row: Optional[Consent]) -> Optional[consent.Decision]:
    return consent.Decision(row.channel, row.purpose, row.granted, row.created_at, row.id) if row else None


def _whole_number(value: Any, low: int, high: int, message: str) -> int:
    """A rating typed or sent as 4, "4", "4.0"; anything else is refused with ``message``."""
    if isinstance(value, bool):
        raise InvalidInput(message)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidInput(message) from None
    if not number.is_integer() or not low <= number <= high:
        raise InvalidInput(message)
    return int(number)


def _category_in_text(text: str) -> Optional[str]:
    """The category a free text names, longest word first ("宠物用品" before "宠物")."""
    words = sorted((*CATEGORIES, *CATEGORY_ALIASES), key=len, reverse=True)
    for word in words:
        if word in text:
            return canonical_category(word)
    return None


__all__ = ["CRM", "PROFILE_FIELDS"]
