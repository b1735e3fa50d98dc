"""`bot.graph_runner.run` gives what `DaskGraphRunner.run` gives: toy graphs, and the trained model's."""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import pytest
from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner

from bot import graph_runner
from tests.conftest import MODEL

graph_runner.install()
STOCK = graph_runner._STOCK_RUN[0]


class _Node:
    """Stands in for a `GraphNode`: records its calls, returns (name, output) as a GraphNode does."""

    def __init__(self, name: str, calls: List[str], fail: Exception | None = None) -> None:
        self.name, self.calls, self.fail = name, calls, fail

    def __call__(self, *inputs: Any) -> tuple:
        self.calls.append(self.name)
        if self.fail is not None:
            raise self.fail
        return self.name, (self.name, [i if isinstance(i, str) else i[1] for i in inputs])


def _runner(needs: Dict[str, Dict[str, str]], targets: List[str], fail: Dict[str, Exception] | None = None):
    schema = GraphSchema({name: SchemaNode(needs=n, uses=GraphComponent, constructor_name="create", fn="run",
                                           config={}, is_target=name in targets)
                          for name, n in needs.items()})
    calls: List[str] = []
    runner = DaskGraphRunner.__new__(DaskGraphRunner)
    runner._graph_schema = schema
    runner._execution_context = None
    runner._instantiated_nodes = {name: _Node(name, calls, (fail or {}).get(name)) for name in needs}
    return runner, calls


DIAMOND = {"a": {}, "b": {"x": "a"}, "c": {"x": "a", "y": "b"}, "d": {"p": "c", "q": "b", "m": "__message__"},
           "unused": {"x": "a"}}


@pytest.mark.parametrize("targets", [["d"], ["c"], ["b", "d"], ["a"]])
def test_same_outputs_and_only_the_needed_nodes_each_once(targets: List[str]) -> None:
    ours, our_calls = _runner(DIAMOND, ["d"])
    stock, stock_calls = _runner(DIAMOND, ["d"])
    inputs = {"__message__": ["你好"]}
    assert graph_runner.run(ours, inputs, targets) == STOCK(stock, inputs, targets)
    assert sorted(our_calls) == sorted(stock_calls)
    assert len(our_calls) == len(set(our_calls))
    for name in our_calls:  # parents ran first
        assert all(our_calls.index(parent) < our_calls.index(name)
                   for parent in DIAMOND[name].values() if parent in DIAMOND)


def test_default_targets_and_an_unresolved_input_passed_as_its_name() -> None:
    ours, _ = _runner(DIAMOND, ["d"])
    stock, _ = _runner(DIAMOND, ["d"])
    assert graph_runner.run(ours) == STOCK(stock)  # no inputs: "__message__" is passed as the string
    assert graph_runner.run(ours)["d"][1][2] == "__message__"


def test_the_same_errors() -> None:
    for error, expected in ((RuntimeError("boom"), GraphRunError), (ValueError("bad"), ValueError)):
        ours, _ = _runner(DIAMOND, ["d"], fail={"c": error})
        stock, _ = _runner(DIAMOND, ["d"], fail={"c": error})
        with pytest.raises(expected):
            graph_runner.run(ours, {}, ["d"])
        with pytest.raises(expected):
            STOCK(stock, {}, ["d"])
    clash, _ = _runner(DIAMOND, ["d"])
    with pytest.raises(GraphRunError, match="clashes"):
        graph_runner.run(clash, {"__message__": "b"}, ["d"])


def test_a_cycle_goes_to_the_stock_runner() -> None:
    cyclic = {"a": {"x": "c"}, "b": {"x": "a"}, "c": {"x": "b"}, "d": {"x": "c"}}
    assert graph_runner.plan(_runner(cyclic, ["d"])[0]._graph_schema.nodes, ["d"]) is None
    assert graph_runner.plan(_runner(DIAMOND, ["d"])[0]._graph_schema.nodes, ["d"]) is not None


# The trained model: every parse and every first prediction the same under both runners.
TEXTS = ["你好", "我的订单到哪了 DD20240101123456", "运费怎么算", "我要投诉快递太慢了😡", "帮我查下积分", "",
         "轉人工", "<script>alert(1)</script>", "退货退款", "发票怎么开", "这个耳机有货吗", "嗯"]


@pytest.fixture(scope="module")
def agent() -> Any:
    if not MODEL.exists():
        pytest.skip("no trained model (make model)")
    from rasa.core.agent import Agent

    return Agent.load(str(MODEL))


def _both(agent: Any, call: Any) -> tuple:
    from rasa.engine.runner.dask import DaskGraphRunner as Runner

    runner = agent.processor.graph_runner
    assert isinstance(runner, Runner)
    ours = call()
    Runner.run = STOCK
    try:
        stock = call()
    finally:
        Runner.run = graph_runner.run
    return ours, stock


def test_the_trained_model_parses_and_predicts_the_same(agent: Any) -> None:
    from rasa.core.channels import UserMessage
    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    processor = agent.processor
    for text in TEXTS:
        ours, stock = _both(agent, lambda: asyncio.run(processor.parse_message(UserMessage(text))))
        assert ours == stock, text
        events = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
                  UserUttered(text, ours["intent"], ours["entities"], ours)]
        tracker = DialogueStateTracker.from_events("graph-runner-test", events, agent.domain.slots)
        ours_p, stock_p = _both(agent, lambda: processor._predict_next_with_tracker(tracker))
        assert vars(ours_p) == vars(stock_p), text


def test_reusing_spacynlps_doc_finds_the_same_entities(agent: Any) -> None:
    """`bot.nlu.spacy_doc_reuse`: the trained model's parse is the same with spaCy run once or twice."""
    from rasa.core.channels import UserMessage
    from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor

    from bot.nlu import spacy_doc_reuse

    spacy_doc_reuse.install()
    # A graph node takes its component's method when the model is loaded (the
    # Rasa server installs the replacement before that): switch it on the node.
    nodes = [node for node in agent.processor.graph_runner._instantiated_nodes.values()
             if node._component_class is SpacyEntityExtractor]
    assert len(nodes) == 1
    texts = TEXTS + ["星辰X5手机", "有没有高山乌龙茶", "云南小粒咖啡豆还有吗", "寄到上海", "帮我推荐一款咖啡机，送到杭州"]
    found = 0
    try:
        for text in texts:
            nodes[0]._fn = spacy_doc_reuse.process
            reused = asyncio.run(agent.processor.parse_message(UserMessage(text)))
            nodes[0]._fn = spacy_doc_reuse._STOCK_PROCESS[0]
            rerun = asyncio.run(agent.processor.parse_message(UserMessage(text)))
            assert reused == rerun, text
            found += sum(e["extractor"] == "SpacyEntityExtractor" for e in reused["entities"])
    finally:
        nodes[0]._fn = SpacyEntityExtractor.process
    assert found >= 5  # the comparison covered spaCy's entities, not only their absence
