"""Actions against a real temporary CRM: build a tracker, run the action,
assert the exact events and messages (in the style of RasaHQ/financial-demo)."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecutionRejected, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import common
from actions.account import ActionRateService, ValidateProfileForm, parse_rating, profile_value_in
from actions.handoff import ActionHandleFallback
from actions.orders import ActionCancelOrder, ActionQueryOrder, ValidateOrderQueryForm
from actions.tickets import ActionSubmitComplaint, ValidateComplaintForm
from crm_adapter import CRM, errors, validation

DOMAIN: dict[str, Any] = {"forms": {"order_query_form": {"required_slots": ["order_number", "phone_last4"]}},
                          "slots": {}}


def make_tracker(slots: dict[str, Any], text: str = "", intent: str = "inform",
                 message_id: str = "m1", events: Optional[list] = None,
                 sender: str = "action-test") -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99},
              "entities": [], "message_id": message_id}
    return Tracker(sender, slots, latest, events or [{"event": "user", "text": text,
                                                      "parse_data": latest}],
                   False, None, {}, "action_listen")


def run(action, tracker: Tracker) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, DOMAIN))
    return events, dispatcher.messages


@pytest.fixture(autouse=True)
def _use(crm: CRM):
    common.use_crm(crm)
    yield
    common.use_crm(None)


def verified(customer_id: int, **slots: Any) -> dict[str, Any]:
    return {"verified": True, "customer_id": str(customer_id), **slots}


def test_query_latest_order_speaks_status_and_resets_flow(crm: CRM) -> None:
    events, messages = run(ActionQueryOrder(), make_tracker(verified(1)))
    assert events == []  # no flow slot held anything
    assert [m["response"] for m in messages] == ["utter_order_status"]
    assert messages[0]["order_number"] == crm.latest_order(1).order_number


def test_query_someone_elses_order_reveals_nothing() -> None:
    _, messages = run(ActionQueryOrder(), make_tracker(verified(1, order_number="260101000011")))
    assert [(m["response"], m["order_number"]) for m in messages] == [
        ("utter_order_not_found", "260101000011")]
    assert "李娜" not in str(messages)


def test_unverified_submit_says_locked_and_does_nothing() -> None:
    _, messages = run(ActionQueryOrder(), make_tracker({"verified": False, "verify_attempts": 3}))
    assert [m["response"] for m in messages] == ["utter_verify_locked"]


def test_verification_sets_identity_slots() -> None:
    action = ValidateOrderQueryForm()
    tracker = make_tracker({"order_number": "260101000021", "requested_slot": "phone_last4"})
    result = action.validate_phone_last4("1111", CollectingDispatcher(), tracker, DOMAIN)
    assert result["verified"] is True and result["customer_id"] == "3"
    assert result["customer_name"] == "王芳"


def test_failed_verification_counts_attempts_and_clears_both_slots() -> None:
    action = ValidateOrderQueryForm()
    dispatcher = CollectingDispatcher()
    tracker = make_tracker({"order_number": "260101000021", "verify_attempts": 1})
    result = action.validate_phone_last4("0000", dispatcher, tracker, DOMAIN)
    assert result == {"order_number": None, "phone_last4": None, "verify_attempts": 2}
    assert dispatcher.messages[0]["response"] == "utter_verify_failed"


def test_cancel_is_idempotent_per_message(crm: CRM) -> None:
    tracker = make_tracker(verified(1, order_number="260101000002", confirm=True))
    _, first = run(ActionCancelOrder(), tracker)
    _, second = run(ActionCancelOrder(), tracker)  # the channel retried the same message
    assert first[0]["response"] == "utter_order_cancelled"
    assert second[0]["response"] == "utter_order_cancelled"
    assert crm.get_order(1, "260101000002").status == "cancelled"


def test_complaint_written_once_per_message(crm: CRM) -> None:
    slots = verified(2, complaint_category="quality", complaint_description="耳机左边没声音")
    tracker = make_tracker(slots, message_id="same-id")
    _, first = run(ActionSubmitComplaint(), tracker)
    _, second = run(ActionSubmitComplaint(), tracker)
    assert first[0]["ticket_number"] == second[0]["ticket_number"]
    assert len(crm.complaints_for_customer(2)) == 1


def test_second_fallback_in_a_row_escalates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")  # not the clock's business (test_handoff: out of hours)
    fallback = {"event": "user", "text": "???", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    tracker = make_tracker({}, text="???", intent="nlu_fallback", events=[fallback, dict(fallback)])
    _, messages = run(ActionHandleFallback(), tracker)
    assert [m["response"] for m in messages] == ["utter_fallback_escalate", "utter_escalated"]


def test_first_fallback_asks_to_rephrase() -> None:
    _, messages = run(ActionHandleFallback(), make_tracker({}, intent="nlu_fallback"))
    assert [m["response"] for m in messages] == ["utter_default"]


def test_crm_down_gives_apology_and_clean_slate() -> None:
    common.use_crm(CRM("postgresql+psycopg2://kefu@127.0.0.1:9/kefu"))
    events, messages = run(ActionQueryOrder(), make_tracker(verified(1, order_number="260101000001", confirm=True)))
    assert [m["response"] for m in messages] == ["utter_crm_unavailable"]
    assert events == [SlotSet("order_number", None), SlotSet("confirm", None)]


def test_a_finished_flow_clears_exactly_the_flow_slots_that_hold_something() -> None:
    tracker = make_tracker(verified(1, order_number="260101000001", rating=5, flow_blocked=False))
    assert common.reset_flow_slots(tracker) == [
        SlotSet("order_number", None), SlotSet("rating", None), SlotSet("flow_blocked", None)]
    assert tracker.get_slot("verified") is True  # identity is not a flow slot
    assert common.reset_flow_slots(make_tracker(verified(1))) == []


def test_rating_recorded_and_thanked() -> None:
    tracker = make_tracker({"rating": "4分"}, intent="rate_service")
    events, messages = run(ActionRateService(), tracker)
    assert events == [SlotSet("rating", None)]
    assert messages[0]["response"] == "utter_rating_thanks" and messages[0]["score"] == 4


@pytest.mark.parametrize("text,score", [("5分", 5), ("五星好评", 5), ("一般般吧", 3),
                                        ("非常不满意", 1), ("还行", 3), ("满意", 4), ("", None)])
def test_parse_rating(text: str, score: Optional[int]) -> None:
    assert parse_rating(text) == score


@pytest.mark.parametrize("field,text,asked,value", [
    ("birthday", "1990年5月3日", True, "1990-05-03"), ("birthday", "1988-12-01", True, "1988-12-01"),
    ("birthday", "19920229", True, "1992-02-29"), ("birthday", "1991年2月30日", True, None),
    ("birthday", "我忘了", True, None), ("birthday", "我要把生日改成1990年5月1日", False, "1990-05-01"),
    ("birthday", "我要改一下生日", False, None),
    ("email", "新邮箱是 Zw@Example.COM 谢谢", True, "Zw@example.com"), ("email", "推荐个耳机", True, None),
    ("email", "邮箱改成 li.na@example.com", False, "li.na@example.com"), ("email", "我要改邮箱", False, None),
    ("phone", "138 1234 5678", True, "13812345678"), ("phone", "手机号改成13912345678", False, "13912345678"),
    ("phone", "12345", True, None),
    ("name", "李娜", True, "李娜"), ("name", "我要改名字", False, None), ("name", "名字改成王芳", False, "王芳"),
    ("address", "上海市浦东新区张江路100号", True, "上海市浦东新区张江路100号"),
    ("address", "默认地址改成北京市海淀区中关村大街1号", False, "北京市海淀区中关村大街1号"),
    ("address", "我要改默认地址", False, None), ("address", "香港九龙弥敦道1号", True, None),
])
def test_profile_value_in(field: str, text: str, asked: bool, value: Optional[str]) -> None:
    """What the customer wrote, read as the CRM will store it; a refusal carries the CRM's words."""
    if value is None:
        with pytest.raises(errors.InvalidInput) as refusal:
            profile_value_in(field, text, asked)
        assert refusal.value.message_zh
    else:
        assert profile_value_in(field, text, asked) == value


def test_welcome_words_by_tier_complaints_and_coupon() -> None:
    from datetime import datetime

    from actions.session import welcome
    from crm_adapter.views import CouponView

    assert welcome("李娜", "potential", [], None) == "李娜您好，欢迎回来！"
    core = welcome("张伟", "core", [], None)
    assert "优先" in core and "核心" not in core
    coupon = CouponView(code="RC202611230001", title="回归礼券", amount=30.0, min_spend=199.0,
                        expires_at=datetime(2026, 12, 7, 23, 59), expiring_soon=False)
    text = welcome("赵敏", "low", [], coupon)
    assert "回归礼券（满199减30，12月07日前有效）" in text
    no_threshold = CouponView(code="RC1", title="回归礼券", amount=20.0, min_spend=0.0,
                              expires_at=datetime(2026, 12, 7), expiring_soon=False)
    assert "立减20元" in welcome("赵敏", "low", [], no_threshold)


@pytest.mark.parametrize("text, category", [
    ("快递三天了还没到，我要投诉", "logistics"),
    ("投诉一下，收到的杯子是破损的", "quality"),
    ("你们客服态度太差了我要投诉", "service"),
    ("买贵了，降价了不给退差价，投诉", "price"),
    ("我要投诉", None),
    ("其他的事，我要投诉", None),  # "other" is never inferred
])
def test_the_complaint_category_comes_from_the_complaint_itself(text: str, category: Optional[str]) -> None:
    tracker = make_tracker({}, text=text, intent="complain")
    found = asyncio.run(ValidateComplaintForm().extract_complaint_category(CollectingDispatcher(), tracker, {}))
    assert found == ({"complaint_category": category} if category else {})


@pytest.mark.parametrize("slots, intent", [
    ({"requested_slot": "complaint_description"}, "inform"),  # a description is not re-read
    ({"complaint_category": "quality"}, "complain"),  # the extractor's or the customer's answer stays
    ({}, "query_order"),  # only a complaint opens the form with a subject
])
def test_the_complaint_category_is_inferred_only_when_opening_the_form(slots: dict, intent: str) -> None:
    tracker = make_tracker(slots, text="快递员把箱子摔坏了", intent=intent)
    assert asyncio.run(ValidateComplaintForm().extract_complaint_category(CollectingDispatcher(), tracker, {})) == {}


RETURN_DOMAIN: dict[str, Any] = {
    "forms": {"return_form": {"required_slots": ["order_number", "phone_last4", "return_reason"]}}, "slots": {}}


def _return_reason_turn(text: str, intent: str = "deny", confidence: float = 0.99) -> tuple[list[dict], list[dict]]:
    from actions.returns import ValidateReturnForm

    # What Rasa hands the validation action: the form's from_text mapping has
    # already put the message into return_reason.
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [], "message_id": "m1"}
    tracker = Tracker("action-test", verified(1, order_number="260101000003", requested_slot="return_reason",
                                              return_reason=text), latest,
                      [{"event": "user", "text": text, "parse_data": latest},
                       {"event": "slot", "name": "return_reason", "value": text}],
                      False, None, {"name": "return_form"}, "action_listen")
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN))
    return events, dispatcher.messages


@pytest.mark.parametrize("reason", ["音质没有想象中好，不太喜欢", "没有想象中好用，也不太喜欢这个颜色",
                                    # Seen by hand: 「音质不好」 (deny, 0.96) ended the return form.
                                    "音质不好", "不合适", "尺码不对", "质量不好", "不喜欢", "不新鲜"])
def test_a_reason_that_reads_like_no_is_still_the_reason(reason: str) -> None:
    events, messages = _return_reason_turn(reason)
    assert SlotSet("return_reason", reason) in events
    assert not any(m.get("response") == "utter_form_stopped" for m in messages)
    assert SlotSet("flow_blocked", True) not in events


@pytest.mark.parametrize("withdrawal", ["我想了想还是不退货了吧", "那我不想退了", "还是不要退了，我留着"])
@pytest.mark.parametrize("intent, confidence", [("request_return", 0.895), ("deny", 0.498)])
def test_taking_the_return_back_ends_the_form_though_it_reads_as_a_return(withdrawal: str, intent: str,
                                                                          confidence: float) -> None:
    # What the classifier makes of such sentences: request_return (they are
    # about returns) or an unsure deny, both under the 0.9 a free-text answer needs.
    events, messages = _return_reason_turn(withdrawal, intent=intent, confidence=confidence)
    assert [m.get("response") for m in messages] == ["utter_form_stopped"]
    assert events == [SlotSet("flow_blocked", True), SlotSet("requested_slot", None)]


@pytest.mark.parametrize("reason", ["客服说不退，可是东西明明是坏的，我要退货", "商家不退款我才来找你们退货的",
                                    "刚买三天就坏了，不退不行", "我要退货，做工太差了"])
def test_a_return_reason_that_mentions_not_returning_is_still_the_reason(reason: str) -> None:
    events, messages = _return_reason_turn(reason, intent="request_return")
    assert SlotSet("return_reason", reason) in events
    assert not any(m.get("response") == "utter_form_stopped" for m in messages)


@pytest.mark.parametrize("form, text, withdraws", [
    ("complaint_form", "算了我不投诉了", True),
    ("complaint_form", "我本来不想投诉的，但是快递员太凶了", False),
    ("profile_form", "手机号不改了", True),
    ("profile_form", "新邮箱是zhang@example.com，以前那个不用了", False),
])
def test_each_free_text_flow_knows_how_it_is_taken_back(form: str, text: str, withdraws: bool) -> None:
    validation = {"complaint_form": ValidateComplaintForm, "profile_form": ValidateProfileForm}[form]()
    assert validation._withdraws(validation.own_intent, text) is withdraws
    assert validation._withdraws("deny", text) is withdraws
    assert validation._withdraws("query_order", text) is False  # read as something else entirely


@pytest.mark.parametrize("refusal", ["算了不退了", "不用了，谢谢", "我想了想还是不退货了吧", "算了算了这个货我自己留着用吧",
                                     "不", "不要", "不了不了 谢谢亲", "no", "NO!", "不不不", "别了", "等等 先不要",
                                     "别 先别提交", "先别弄"])
def test_a_refusal_in_a_free_text_slot_ends_the_form(refusal: str) -> None:
    events, messages = _return_reason_turn(refusal)
    assert [m.get("response") for m in messages] == ["utter_form_stopped"]
    assert events == [SlotSet("flow_blocked", True), SlotSet("requested_slot", None)]


PROFILE_DOMAIN: dict[str, Any] = {
    "forms": {"profile_form": {"required_slots": ["profile_field", "profile_value", "confirm"]}}, "slots": {}}


def _profile_turn(text: str, intent: str, requested: Optional[str], field: str = "birthday",
                  confidence: float = 0.95) -> tuple[list[dict], list[dict]]:
    """One turn of the profile form as Rasa hands it over (the from_text mapping already applied)."""
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [], "message_id": "m1"}
    slots = verified(1, profile_field=field, requested_slot=requested)
    events = [{"event": "user", "text": text, "parse_data": latest}]
    if requested == "profile_value":
        slots["profile_value"] = text
        events.append({"event": "slot", "name": "profile_value", "value": text})
    tracker = Tracker("action-test", slots, latest, events, False, None,
                      {"name": "profile_form"} if requested else {}, "action_listen")
    dispatcher = CollectingDispatcher()
    return asyncio.run(ValidateProfileForm().run(dispatcher, tracker, PROFILE_DOMAIN)), dispatcher.messages


@pytest.mark.parametrize("text,intent", [("以后别再给我发促销短信了", "unsubscribe"), ("给你们打个3分吧", "rate_service"),
                                         ("推荐个耳机", "ask_recommendation")])
def test_another_request_in_a_free_text_slot_goes_to_its_own_flow(text: str, intent: str) -> None:
    """Rasa's unhappy path: the form's turn is rejected, so the rules answer the message,
    and the refused text is cleared so the resumed form asks again instead of taking it."""
    events, messages = _profile_turn(text, intent, "profile_value")
    assert events == [SlotSet("profile_value", None), ActionExecutionRejected("profile_form")]
    assert messages == []  # no 「生日格式没看懂」 for what was never an answer


def test_an_unsure_non_answer_is_still_told_what_is_wrong() -> None:
    events, messages = _profile_turn("给你们打个3分吧", "rate_service", "profile_value", confidence=0.4)
    assert SlotSet("profile_value", None) in events and not any(e.get("event") == "action_execution_rejected"
                                                                 for e in events)
    assert [m.get("response") for m in messages] == ["utter_invalid_value"]


@pytest.mark.parametrize("field,text,value", [("birthday", "我要把生日改成1990年5月1日", "1990-05-01"),
                                              ("email", "邮箱换成 li.na@example.com", "li.na@example.com")])
def test_a_new_value_given_with_the_request_is_taken(field: str, text: str, value: str) -> None:
    """Seen by hand: 「我要把生日改成1990年5月1日」 was answered 「请输入新的生日」."""
    events, messages = _profile_turn(text, "update_profile", None, field=field)
    assert SlotSet("profile_value", value) in events
    assert messages == []


def test_an_email_that_is_not_one_is_refused_before_it_is_confirmed() -> None:
    """Seen by hand: 「推荐个耳机」 as a new e-mail was asked to be confirmed, then refused by the CRM."""
    events, messages = _profile_turn("我的邮箱", "inform", "profile_value", field="email")
    assert SlotSet("profile_value", None) in events
    assert messages[0]["message"] == validation.MSG_EMAIL


COMPLAINT_DOMAIN: dict[str, Any] = {
    "forms": {"complaint_form": {"required_slots": ["complaint_category", "complaint_description"]}}, "slots": {}}


def _description_turn(text: str, intent: str, confidence: float = 0.95,
                      latest_action: str = "action_listen") -> list[dict]:
    """The complaint form awaiting its description (the from_text mapping already applied)."""
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [], "message_id": "m1"}
    tracker = Tracker("action-test", verified(1, complaint_category="logistics", requested_slot="complaint_description",
                                              complaint_description=text), latest,
                      # As Rasa hands it over: the run being validated recorded, then the slot candidates.
                      [{"event": "action", "name": latest_action}, {"event": "user", "text": text, "parse_data": latest},
                       {"event": "action", "name": "complaint_form"},
                       {"event": "slot", "name": "complaint_description", "value": text}],
                      False, None, {"name": "complaint_form"}, "complaint_form")
    return asyncio.run(ValidateComplaintForm().run(CollectingDispatcher(), tracker, COMPLAINT_DOMAIN))


@pytest.mark.parametrize("text,intent", [("我还有多少积分", "query_membership"), ("运费怎么算？", "faq"),
                                         ("退款什么时候到账", "query_refund")])
def test_a_short_side_question_is_not_filed_as_the_description(text: str, intent: str) -> None:
    """Seen by hand: 「我还有多少积分」, asked for a complaint's description, was filed as one."""
    assert _description_turn(text, intent) == [SlotSet("complaint_description", None),
                                               ActionExecutionRejected("complaint_form")]


@pytest.mark.parametrize("text,intent,confidence", [
    ("快递员态度很差，把包裹扔在门口就走了", "complain", 0.95),      # the flow's own intent
    ("我的快递到哪了？", "query_order", 0.7),                          # not sure enough
    ("订单260101000001到现在还没发货", "query_order", 0.95),          # a statement, not a question
    ("快递三天了还没到，打电话也没人接，到底什么时候能送到？", "query_order", 0.95),  # too long for an aside
])
def test_a_description_that_reads_like_something_else_is_still_the_description(text: str, intent: str,
                                                                                confidence: float) -> None:
    events = _description_turn(text, intent, confidence)
    assert SlotSet("complaint_description", text) in events
    assert not any(e.get("event") == "action_execution_rejected" for e in events)


def test_the_form_resuming_after_an_aside_does_not_read_the_aside_again() -> None:
    """Rasa calls the validation again when the form resumes, with the aside still the
    latest message: rejected a second time, the FAQ answer was followed by 「没太理解」."""
    events = _description_turn("运费怎么算？", "faq", latest_action="utter_faq")
    assert not any(e.get("event") == "action_execution_rejected" for e in events)
    events = _description_turn("运费怎么算？", "faq", latest_action="action_listen")
    assert ActionExecutionRejected("complaint_form") in events  # the same message, just sent


def test_a_form_started_mid_way_does_not_read_the_last_forms_question_as_its_own() -> None:
    """Rasa leaves requested_slot at the complaint's description when 「我还有多少积分」
    starts the membership form; read as that form's question, it was rejected too."""
    from actions.account import ValidateMembershipForm

    text = "我还有多少积分"
    latest = {"text": text, "intent": {"name": "query_membership", "confidence": 0.97}, "entities": [],
              "message_id": "m1"}
    tracker = Tracker("action-test", verified(1, requested_slot="complaint_description"), latest,
                      [{"event": "action", "name": "action_listen"}, {"event": "user", "text": text, "parse_data": latest},
                       {"event": "active_loop", "name": "membership_form"},
                       {"event": "action", "name": "membership_form"}],
                      False, None, {"name": "membership_form"}, "membership_form")
    events = asyncio.run(ValidateMembershipForm().run(CollectingDispatcher(), tracker,
                                                      {"forms": {"membership_form": {"required_slots": []}}, "slots": {}}))
    assert not any(e.get("event") == "action_execution_rejected" for e in events)


@pytest.mark.parametrize("text,title", [
    ("我要开发票，抬头是上海某某科技有限公司", "上海某某科技有限公司"),
    ("上海某某科技有限公司", "上海某某科技有限公司"),
    ("订单260101000002开发票，开给北京大学", "北京大学"),
    ("开个人发票", "个人"), ("抬头写个人就行", "个人"),
    ("我们公司要开票", None), ("公司", None), ("我要开发票", None), ("260101000002", None),
])
def test_an_invoice_title_said_in_passing(text: str, title: Optional[str]) -> None:
    from actions.tickets import invoice_title_in
    assert invoice_title_in(text) == title


@pytest.mark.parametrize("bare", ["公司", "企业", "公司发票", "单位的", "专票", "增值税专用发票", "电子发票"])
def test_a_kind_of_invoice_is_not_a_title(bare: str) -> None:
    """「公司」, answering 「公司请输入公司全称」, was taken as the company's name."""
    with pytest.raises(errors.InvalidInput):
        validation.invoice_title(bare)
    assert validation.invoice_title("上海某某科技有限公司") == "上海某某科技有限公司"


@pytest.mark.parametrize("text,kept", [("我要投诉", False), ("我要投诉你们！！", False), ("投诉", False),
                                       ("我一定要投诉你们", False), ("快递员态度太差", True),
                                       ("我要投诉快递员，把包裹扔门口", True), ("物流", False)])
def test_a_description_must_say_what_happened(text: str, kept: bool) -> None:
    """Seen by hand: 「我要投诉」, answering 「请详细描述一下发生了什么」, was filed as the description."""
    dispatcher = CollectingDispatcher()
    result = ValidateComplaintForm().validate_complaint_description(text, dispatcher, make_tracker({}), {})
    assert (result["complaint_description"] is not None) is kept
    assert ([m["response"] for m in dispatcher.messages] == ["utter_ask_complaint_details"]) is not kept


@pytest.mark.parametrize("active,requested,text,intent,responses", [
    (False, None, "好的", "affirm", ["utter_anything_else"]),
    (False, None, "上海", "inform", ["utter_how_can_help"]),
    (True, "order_number", "好的", "affirm", []),               # the form's question follows
    (True, "order_number", "0000", "inform", ["utter_invalid_order_number"]),
    (True, "invoice_title", "123", "inform", []),
])
def test_a_short_reply_to_no_question(active: bool, requested: Optional[str], text: str, intent: str,
                                      responses: list[str]) -> None:
    from actions.acknowledge import ActionAcknowledge

    tracker = make_tracker({"requested_slot": requested}, text=text, intent=intent)
    tracker.active_loop = {"name": "invoice_form"} if active else {}
    events, messages = run(ActionAcknowledge(), tracker)
    assert events == [] and [m["response"] for m in messages] == responses


def test_a_finished_flow_remembers_the_customers_order_for_the_next_question(crm: CRM) -> None:
    from actions.orders import ActionCancelOrder

    events, _ = run(ActionCancelOrder(), make_tracker(verified(1, order_number="260101000002", confirm=False)))
    assert events[-1] == SlotSet("recent_order", "260101000002")
    anonymous_events, _ = run(ActionCancelOrder(), make_tracker({"order_number": "260101000002"}))
    assert SlotSet("recent_order", "260101000002") not in anonymous_events


@pytest.mark.parametrize("text,intent,extracted", [("是", "affirm", "260101000012"), ("对，就是这单", "affirm", "260101000012"),
                                                   ("不是", "deny", None), ("260101000003", "inform", None)])
def test_yes_to_the_offered_order_is_that_order(text: str, intent: str, extracted: Optional[str]) -> None:
    from actions.returns import ValidateReturnForm

    tracker = make_tracker(verified(1, recent_order="260101000012", requested_slot="order_number"),
                           text=text, intent=intent)
    found = asyncio.run(ValidateReturnForm().extract_order_number(CollectingDispatcher(), tracker, {}))
    assert found == ({"order_number": extracted} if extracted else {})


def test_no_to_the_offered_order_asks_for_the_number_instead_of_ending_the_form() -> None:
    from actions.returns import ValidateReturnForm

    tracker = make_tracker(verified(1, recent_order="260101000012", requested_slot="order_number"),
                           text="不是", intent="deny")
    tracker.active_loop = {"name": "return_form"}
    events = asyncio.run(ValidateReturnForm()._interruption(CollectingDispatcher(), tracker, 0.6))
    assert events == [SlotSet("recent_order", None)]
