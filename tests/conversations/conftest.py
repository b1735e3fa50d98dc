"""Chats with the real servers; fixtures that bind a fresh sender to a demo customer."""
from __future__ import annotations

import uuid

import pytest

from crm_adapter import CRM
from tests.conftest import Chat

ZHANGWEI, LINA, WANGFANG = 1, 2, 3


@pytest.fixture()
def stack_crm(stack) -> CRM:
    """The CRM the running action server uses, opened from the test process."""
    return CRM(stack.settings.crm_url)


def bound_chat(stack, crm: CRM, customer_id: int) -> Chat:
    """A new REST conversation already bound to a customer (like a logged-in user)."""
    sender = f"bound-{uuid.uuid4().hex[:10]}"
    crm.bind_identity("rest", sender, customer_id, f"test-bind:{sender}")
    return Chat(stack, sender)


@pytest.fixture()
def zhangwei(stack, stack_crm) -> Chat:
    return bound_chat(stack, stack_crm, ZHANGWEI)


@pytest.fixture()
def lina(stack, stack_crm) -> Chat:
    return bound_chat(stack, stack_crm, LINA)


@pytest.fixture()
def anonymous(stack) -> Chat:
    return Chat(stack)
