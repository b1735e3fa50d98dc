"""Alembic migrations: the migrated schema is the models' schema, both ways, on every backend."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect, select, text

from crm_adapter import CRM, errors, migrate
from crm_adapter.models import Base, Customer
from crm_adapter.seed import seed

from .conftest import SEED_NOW

#: Tables that later revisions add (the rest are the baseline's).
TABLES_AFTER_BASELINE = {"contact_preferences", "customer_metrics", "customer_segment_changes", "analytics_runs", "nps_responses", "outbox",
                         "staff", "staff_sessions", "escalation_events", "canned_responses",
                         "complaint_events", "complaint_search",
                         "care_sends", "care_campaign_states", "care_channel_preferences",
                         "care_conversations", "scheduler_leases", "care_jobs",
                         "product_popularity", "product_copurchases"}
#: SQLite's FTS5 search table over complaint_search and its shadow tables
#: (migration 0007): database machinery, not models.
FTS_PREFIX = "complaint_search_fts"


def _not_fts(name: Any, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and str(name).startswith(FTS_PREFIX))

HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def _differences(crm: CRM, metadata: MetaData = Base.metadata) -> list[Any]:
    with crm.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_fts})
        return compare_metadata(context, metadata)


def _tables(crm: CRM) -> set[str]:
    return {t for t in inspect(crm.engine).get_table_names() if not t.startswith(FTS_PREFIX)} - {migrate.VERSION_TABLE}


def _to_pre_alembic(crm: CRM) -> None:
    """What `create_all` made before migrations existed: the baseline tables, no version table."""
    migrate.upgrade(crm.engine, migrate.BASELINE)
    with crm.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {migrate.VERSION_TABLE}"))


def test_one_linear_history_from_the_baseline() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    assert script.get_base() == migrate.BASELINE
    assert migrate.BASELINE_TABLES == set(Base.metadata.tables) - TABLES_AFTER_BASELINE


def test_upgrade_head_gives_exactly_the_models_schema(blank_url: str) -> None:
    crm = CRM(blank_url)
    crm.create_schema()
    assert migrate.current(crm.engine) == HEAD
    assert _differences(crm) == []
    assert _tables(crm) == set(Base.metadata.tables)
    crm.dispose()


def test_comparison_notices_a_column_without_migration(blank_url: str) -> None:
    """Guards the test above: a model change that no migration makes is reported."""
    crm = CRM(blank_url)
    crm.create_schema()
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["customers"].append_column(Column("nickname", String(32)))
    diffs = _differences(crm, changed)
    assert [d[0] for d in diffs] == ["add_column"]
    assert diffs[0][3].name == "nickname"
    crm.dispose()


def test_create_schema_twice_is_harmless(blank_url: str) -> None:
    crm = CRM(blank_url)
    crm.create_schema()
    crm.create_schema()
    assert migrate.current(crm.engine) == HEAD
    crm.dispose()


def test_downgrade_to_base_and_up_again(blank_url: str) -> None:
    crm = CRM(blank_url)
    crm.create_schema()
    assert migrate.downgrade(crm.engine, migrate.BASELINE) == migrate.BASELINE
    assert _tables(crm) == migrate.BASELINE_TABLES
    assert migrate.downgrade(crm.engine, "base") is None
    assert _tables(crm) == set()
    assert migrate.upgrade(crm.engine) == HEAD
    assert _differences(crm) == []
    crm.dispose()


def test_every_step_down_and_up_keeps_the_seeded_data(blank_url: str) -> None:
    crm = CRM(blank_url)
    seed(crm, customers=5, seed=7, now=SEED_NOW)
    revisions = [r.revision for r in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()]
    for revision in revisions[1:]:  # newest first; stop at the baseline
        migrate.downgrade(crm.engine, revision)
    assert migrate.current(crm.engine) == migrate.BASELINE
    migrate.upgrade(crm.engine)
    assert crm.get_customer(1).name == "张伟"
    assert crm.resolve_identity("rest", "demo-zhangwei").id == 1
    assert _differences(crm) == []
    crm.dispose()


def test_pre_alembic_database_is_stamped_and_upgraded(blank_url: str) -> None:
    crm = CRM(blank_url)
    _to_pre_alembic(crm)
    with crm.engine.begin() as conn:
        conn.execute(Customer.__table__.insert().values(
            id=1, name="张伟", phone="13800138000", member_level="普通会员", points=0,
            points_expiring=0, tier="low", lifecycle_stage="potential", total_spent=0,
            created_at=SEED_NOW.replace(tzinfo=None), timezone="Asia/Shanghai", deleted=False,
        ))
    assert migrate.current(crm.engine) is None
    crm.create_schema()  # used to be create_all: must not crash or re-create
    assert migrate.current(crm.engine) == HEAD
    assert crm.get_customer(1).name == "张伟"
    assert _differences(crm) == []
    crm.dispose()


def test_partial_schema_without_history_is_refused_and_left_alone(blank_url: str) -> None:
    crm = CRM(blank_url)
    with crm.engine.begin() as conn:
        Customer.__table__.create(conn)
    with pytest.raises(errors.CRMUnavailable, match="no migration history"):
        crm.create_schema()
    assert _tables(crm) == {"customers"}
    assert migrate.current(crm.engine) is None
    crm.dispose()


def test_concurrent_create_schema_on_an_empty_database(blank_url: str) -> None:
    crms = [CRM(blank_url) for _ in range(3)]
    barrier = threading.Barrier(len(crms))
    failures: list[BaseException] = []

    def run(crm: CRM) -> None:
        barrier.wait()
        try:
            crm.create_schema()
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in crms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert migrate.current(crms[0].engine) == HEAD
    with crms[0].engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {migrate.VERSION_TABLE}")).scalar_one() == 1
    for crm in crms:
        crm.dispose()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert migrate.main(["--url", url, "current"]) == 0
    assert capsys.readouterr().out.strip() == "base"
    assert migrate.main(["--url", url, "upgrade"]) == 0
    assert f"at revision {HEAD}" in capsys.readouterr().out
    assert migrate.main(["--url", url, "downgrade", migrate.BASELINE]) == 0
    assert migrate.main(["--url", url, "current"]) == 0
    assert capsys.readouterr().out.strip().endswith(migrate.BASELINE)
    with pytest.raises(SystemExit):
        migrate.main(["--url", url, "sideways"])


def test_seeded_template_is_at_head(crm: CRM) -> None:
    assert migrate.current(crm.engine) == HEAD
    with crm.engine.connect() as conn:
        assert conn.execute(select(Customer.name).where(Customer.id == 1)).scalar_one() == "张伟"


def _customer_and_consent_at_baseline(crm: CRM, channel: str) -> None:
    migrate.upgrade(crm.engine, migrate.BASELINE)
    with crm.engine.begin() as conn:
        conn.execute(Customer.__table__.insert().values(
            id=1, name="张伟", member_level="普通会员", points=0, points_expiring=0, tier="low",
            lifecycle_stage="potential", total_spent=0, created_at=SEED_NOW.replace(tzinfo=None),
            timezone="Asia/Shanghai", deleted=False,
        ))
        conn.execute(text(
            "INSERT INTO consents (customer_id, channel, purpose, granted, source, created_at) "
            "VALUES (1, :channel, 'marketing', :granted, 'registration', :at)"
        ), {"channel": channel, "granted": True, "at": SEED_NOW.replace(tzinfo=None)})


def test_privacy_revision_marks_old_consents_as_recorded_by_unknown(blank_url: str) -> None:
    crm = CRM(blank_url)
    _customer_and_consent_at_baseline(crm, "sms")
    crm.create_schema()
    [decision] = crm.consent_history(1)
    assert (decision.channel, decision.granted, decision.recorded_by) == ("sms", True, "unknown")
    assert crm.consent_status(1, "sms", "marketing").granted is True
    crm.dispose()


def test_privacy_revision_refuses_unknown_consent_channels(blank_url: str) -> None:
    crm = CRM(blank_url)
    _customer_and_consent_at_baseline(crm, "fax")
    with pytest.raises(RuntimeError, match="fax"):
        crm.create_schema()
    assert migrate.current(crm.engine) == migrate.BASELINE  # nothing half-done
    assert "contact_preferences" not in _tables(crm)
    crm.dispose()
