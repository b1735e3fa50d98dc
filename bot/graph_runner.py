"""Run a trained model's graph in a planned order, without dask's scheduler.

Why: Rasa 3.6 runs every prediction through `DaskGraphRunner.run`, which, on
every call, cuts the graph down to the targets' ancestors, rebuilds a dask
task graph, orders it (`dask.order`) and runs it through dask's thread-pool
machinery in the calling thread (`dask.get` = `get_sync`).  A message makes
two or three of these runs (the NLU parse, then one policy prediction per
action), and under the REST load the scheduling alone was about a tenth of the
Rasa process's CPU: more than the intent model, the spaCy pipeline and the
entity CRF together (BENCHMARKS.md, "REST round trips").

The graph of a loaded model never changes, so `run` here works out once per
target set which nodes are needed and in what order (a topological order of
the same minimal schema dask gets), then calls each `GraphNode` with its
parents' outputs exactly as dask's `get_sync` calls it: the same node
objects, the same arguments (a name dask cannot resolve is passed as that
name, which `GraphNode` reports), the same results and the same exceptions
(`RuntimeError` becomes `GraphRunError`).  Only nodes the targets need run,
each once.  A graph this planner cannot order (a cycle, a target that is
neither a node nor an input) goes to the stock runner, so it fails the way
Rasa does.  `tests/bot/test_graph_runner.py` runs both runners over the
trained model's graphs and compares every output.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Text, Tuple

from rasa.engine.exceptions import GraphRunError

_STOCK_RUN: List[Callable[..., Dict[Text, Any]]] = []
_PLANS = "_kefu_plans"

#: (node name, names its inputs come from) in the order to run them.
Plan = Tuple[Tuple[Text, Tuple[Text, ...]], ...]


def plan(nodes: Dict[Text, Any], targets: Sequence[Text]) -> Optional[Plan]:
    """The targets' ancestors (and the targets), parents before children; None if not orderable."""
    order: List[Text] = []
    state: Dict[Text, int] = {}  # 1 = being visited, 2 = done
    for target in targets:
        stack: List[Tuple[Text, bool]] = [(target, False)]
        while stack:
            name, expanded = stack.pop()
            if name not in nodes:
                continue  # an input placeholder (or a literal dask passes through)
            if expanded:
                state[name] = 2
                order.append(name)
                continue
            seen = state.get(name)
            if seen == 2:
                continue
            if seen == 1:
                return None  # a cycle
            state[name] = 1
            stack.append((name, True))
            for parent in reversed(list(nodes[name].needs.values())):
                if state.get(parent) == 1 and parent in nodes:
                    return None
                if state.get(parent) != 2:
                    stack.append((parent, False))
    return tuple((name, tuple(nodes[name].needs.values())) for name in order)


def run(self: Any, inputs: Optional[Dict[Text, Any]] = None,
        targets: Optional[List[Text]] = None) -> Dict[Text, Any]:
    """Drop-in for `DaskGraphRunner.run`."""
    run_targets = targets if targets else self._graph_schema.target_names
    plans: Dict[Tuple[Text, ...], Optional[Plan]] = self.__dict__.setdefault(_PLANS, {})
    key = tuple(run_targets)
    if key not in plans:
        plans[key] = plan(self._graph_schema.nodes, run_targets)
    steps = plans[key]
    known = self._graph_schema.nodes
    if steps is None or any(t not in known and t not in (inputs or {}) for t in run_targets):
        return _STOCK_RUN[0](self, inputs, targets)

    results: Dict[Text, Any] = {}
    if inputs:
        self._add_inputs_to_graph(inputs, dict(steps))  # the stock name-clash check
        for name, value in inputs.items():
            results[name] = (name, value)
    nodes = self._instantiated_nodes
    try:
        for name, needs in steps:
            results[name] = nodes[name](*(results.get(parent, parent) for parent in needs))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e
    return dict(results[target] for target in run_targets)  # as stock: keyed by each output's node


def install() -> None:
    """Replace `DaskGraphRunner.run` (idempotent)."""
    from rasa.engine.runner.dask import DaskGraphRunner

    if not _STOCK_RUN:
        _STOCK_RUN.append(DaskGraphRunner.run)
        DaskGraphRunner.run = run  # type: ignore[assignment]
