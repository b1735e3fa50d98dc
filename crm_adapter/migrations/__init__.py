"""Alembic migrations of the CRM schema; run them with `crm_adapter.migrate`."""
