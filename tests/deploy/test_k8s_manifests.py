"""deploy/k8s: valid for Kubernetes 1.28 (offline schemas, kubernetes-validate)
and consistent with the code it runs: commands, environment variables,
ConfigMap/Secret references, selectors and ports."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml

from bot import settings as settings_mod
from bot.run import Stack
from bot.settings import ROOT

K8S = ROOT / "deploy" / "k8s"
VERSION = "1.28.0"
# Read by libraries or the interpreter rather than by our code.
LIBRARY_VARS = {"PYTHONPATH", "RASA_TELEMETRY_ENABLED", "TF_CPP_MIN_LOG_LEVEL", "SANIC_KEEP_ALIVE_TIMEOUT",
                "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD"}  # libpq (psycopg2)
# Where each container's process reads its environment.
SOURCES = {
    "rasa": ["bot/rasa_server.py", "bot/rasa_auth.py", "bot/tracker_store.py", "bot/event_broker.py", "bot/channels",
             "bot/nlu", "bot/policies", "crm_adapter/policy.py"],
    "actions": ["bot/action_server.py", "actions", "crm_adapter"],
    "web": ["bot/web"],
    "desk": ["bot/desk", "bot/forwarded.py", "bot/rasa_auth.py", "crm_adapter"],
    "scheduler": ["bot/scheduler", "bot/rasa_auth.py", "crm_adapter"],
    "events-consumer": ["bot/events_sink.py"],
}
# Modules a manifest runs that another branch of issue 8 is building.
PENDING_MODULES: dict[str, str] = {}
# Secrets that are not Kefu's to generate (README.md says where they come from).
EXTERNAL_SECRETS = {"kefu-tls"}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                doc.setdefault("metadata", {})["_file"] = path.name
                docs.append(doc)
    return docs


def clean(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("_file", None)
    return doc


DOCS = documents()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def by_name(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(kind)}


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container


def container(name: str) -> dict[str, Any]:
    return next(c for _, c in containers() if c["name"] == name)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['metadata']['_file']}:{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_for_kubernetes_1_28(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(clean(doc), VERSION, strict=True)


def test_broken_manifests_are_rejected() -> None:
    rasa = clean(by_name("Deployment")["kefu-rasa"])
    wrong_type = copy.deepcopy(rasa)
    wrong_type["spec"]["replicas"] = "two"
    no_selector = copy.deepcopy(rasa)
    del no_selector["spec"]["selector"]
    unknown_field = copy.deepcopy(rasa)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/"}}
    for broken in (wrong_type, no_selector, unknown_field):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_generates_the_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert generated["kefu-secrets"]["envs"] == ["secrets.env"]
    # The filled-in file is never committed; the example has no values.
    assert "secrets.env" in (K8S / ".gitignore").read_text().split()
    for line in (K8S / "secrets.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.endswith("="), f"a value in secrets.env.example: {line.split('=')[0]}"
    assert not of_kind("Secret"), "secret values are never committed as manifests"


def secret_keys() -> set[str]:
    return {line.split("=", 1)[0] for line in (K8S / "secrets.env.example").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def test_every_configmap_and_secret_reference_exists() -> None:
    config_maps = by_name("ConfigMap")
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    for deployment, c in containers():
        for env in c.get("env", []):
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in config_maps[ref["name"]]["data"], (c["name"], env["name"])
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["name"] == "kefu-secrets" and ref["key"] in secret_keys(), (c["name"], env["name"])
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    for ingress in of_kind("Ingress"):
        for tls in ingress["spec"].get("tls", []):
            assert tls["secretName"] in EXTERNAL_SECRETS and tls["secretName"] in readme


def test_selectors_match_labels_and_targets_exist() -> None:
    deployments = by_name("Deployment")
    for deployment in deployments.values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for service in of_kind("Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        matched = [t for t in templates if service["spec"]["selector"].items() <= t.items()]
        assert len(matched) == 1, service["metadata"]["name"]
    for pdb in of_kind("PodDisruptionBudget"):
        assert any(pdb["spec"]["selector"]["matchLabels"].items() <= t.items() for t in templates)
    for hpa in of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert hpa["spec"]["minReplicas"] <= deployments[target["name"]]["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def test_service_ports_match_container_ports_and_ingress_backends_exist() -> None:
    deployments = by_name("Deployment")
    services = by_name("Service")
    for service in services.values():
        if service["spec"].get("type") == "ExternalName":
            continue
        deployment = next(d for d in deployments.values()
                          if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items())
        ports = {p["name"]: p["containerPort"]
                 for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]
            assert port["port"] == ports[port["targetPort"]], service["metadata"]["name"]
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in names


def _listen_port(args: list[str]) -> str:
    for flag in ("-p", "--port"):
        if flag in args:
            return args[args.index(flag) + 1]
    raise AssertionError(f"no port in {args}")


def test_probes_and_ports_agree_with_the_commands() -> None:
    for deployment, c in containers():
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if ports:
            assert str(ports["http"]) == _listen_port(c["args"]), c["name"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["port"] in ports
    rasa = container("rasa")
    # /status needs the API token; / answers without it, once the model is loaded.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert rasa[probe]["httpGet"]["path"] == "/"
    assert container("desk")["readinessProbe"]["httpGet"]["path"] == "/desk/health"


def _module_and_flags(argv: list[str]) -> tuple[str, list[str], set[str]]:
    """(module, positional words, flags) of `python -m module ...`."""
    module = argv[argv.index("-m") + 1]
    rest = argv[argv.index("-m") + 2:]
    flags = {a.split("=", 1)[0] for a in rest if a.startswith("-")}
    words, skip = [], False
    for a in rest:
        if a.startswith("-"):
            skip = True
            continue
        if not skip:
            words.append(a)
        skip = False
    return module, words, flags


def test_commands_match_what_bot_run_starts(tmp_path: Path) -> None:
    settings = settings_mod.load(tmp_path, {"KEFU_CARE_SCHEDULER": "1", "KEFU_RASA_TOKEN": "t"})
    commands = Stack(settings)._commands()
    assert set(commands) <= {c["name"] for _, c in containers()}
    for name, argv in commands.items():
        c = container(name)
        assert _module_and_flags(["python", *argv[1:]]) == _module_and_flags([*c["command"], *c.get("args", [])]), name
    rasa = container("rasa")
    args = rasa["args"]
    mounts = {m["name"]: m["mountPath"] for m in rasa["volumeMounts"]}
    assert args[args.index("--endpoints") + 1] == f"{mounts['rasa-files']}/endpoints.yml"
    assert args[args.index("--credentials") + 1] == f"{mounts['rasa-files']}/credentials.yml"
    assert "--auth-token=$(KEFU_RASA_TOKEN)" in args
    assert args[args.index("--model") + 1] == "/app/models/kefu.tar.gz"


def test_every_module_a_manifest_runs_exists_or_is_pending() -> None:
    import importlib.util
    for _, c in containers():
        module = _module_and_flags([*c["command"], *c.get("args", [])])[0]
        if importlib.util.find_spec(module) is None:
            assert module in PENDING_MODULES, f"{c['name']} runs {module}, which does not exist"


def env_read_by(component: str, rendered: str = "") -> set[str]:
    names: set[str] = set()
    for relative in SOURCES[component]:
        path = ROOT / relative
        files = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        for file in files:
            names |= set(re.findall(r"[\"'](KEFU_[A-Z0-9_]+)[\"']", file.read_text(encoding="utf-8")))
    names |= set(re.findall(r"\$\{(\w+)\}", rendered))
    return names


def unread_env(component: str, c: dict[str, Any]) -> set[str]:
    rendered = ""
    if component == "rasa":
        files = by_name("ConfigMap")["kefu-rasa-files"]["data"]
        rendered = files["endpoints.yml"] + files["credentials.yml"]
    args_vars = set(re.findall(r"\$\((\w+)\)", " ".join([*c.get("command", []), *c.get("args", [])])))
    known = env_read_by(component, rendered) | LIBRARY_VARS | args_vars
    return {e["name"] for e in c.get("env", [])} - known


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_env_var_a_container_sets_is_read_by_its_process(name: str) -> None:
    c = container(name)
    module = _module_and_flags([*c["command"], *c.get("args", [])])[0]
    if module in PENDING_MODULES and not any((ROOT / p).exists() for p in SOURCES[name]):
        pytest.skip(f"{module} is pending: {PENDING_MODULES[module]}")
    assert not c.get("envFrom"), "explicit variables only, so this test sees them"
    assert unread_env(name, c) == set()


def test_an_env_var_nobody_reads_is_caught() -> None:
    c = copy.deepcopy(container("desk"))
    c["env"].append({"name": "KEFU_WEB_SECRET", "value": "x"})  # the widget's, not the desk's
    c["env"].append({"name": "KEFU_DESK_TYPO", "value": "x"})
    assert unread_env("desk", c) == {"KEFU_WEB_SECRET", "KEFU_DESK_TYPO"}


def test_rendered_endpoints_and_credentials_load_in_rasa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.lock_store import LockStore

    from bot.lock_store import RenewedRedisLockStore
    from rasa.core.utils import AvailableEndpoints
    from rasa.shared.utils.io import read_config_file

    files = by_name("ConfigMap")["kefu-rasa-files"]["data"]
    for var in set(re.findall(r"\$\{(\w+)\}", files["endpoints.yml"] + files["credentials.yml"])):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    (tmp_path / "endpoints.yml").write_text(files["endpoints.yml"], encoding="utf-8")
    (tmp_path / "credentials.yml").write_text(files["credentials.yml"], encoding="utf-8")
    endpoints = AvailableEndpoints.read_endpoints(str(tmp_path / "endpoints.yml"))
    assert endpoints.tracker_store.type == "bot.tracker_store.IndexedSQLTrackerStore"
    assert endpoints.tracker_store.kwargs["host"] == "value-of-pghost"
    assert endpoints.event_broker.type == "pika"
    assert endpoints.event_broker.kwargs["queues"] == ["value-of-kefu_rabbitmq_queue"]
    assert endpoints.action.url == "value-of-kefu_action_url"
    assert endpoints.action.headers == {"X-Kefu-Action-Token": "value-of-kefu_action_token"}
    lock_store = LockStore.create(endpoints.lock_store)  # redis-py connects lazily
    assert isinstance(lock_store, RenewedRedisLockStore)
    assert lock_store.red.connection_pool.connection_kwargs["host"] == "value-of-kefu_redis_host"
    channels = read_config_file(str(tmp_path / "credentials.yml"))
    local = read_config_file(str(ROOT / "credentials.yml"))
    # Same channels as the repository's, less REST (it trusts the sender id it is given).
    assert set(channels) == set(local) - {"bot.channels.rest.LimitedRestInput"}
    assert channels["bot.channels.web.WebChatInput"]["secret"] == "value-of-kefu_web_secret"


def test_sizing_replicas_and_disruption() -> None:
    deployments = by_name("Deployment")
    for deployment, c in containers():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), c["name"]
    assert deployments["kefu-rasa"]["spec"]["replicas"] >= 2
    assert deployments["kefu-actions"]["spec"]["replicas"] == 2
    assert deployments["kefu-scheduler"]["spec"]["replicas"] == 2  # safe: one leader by lease
    assert {h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler")} == {"kefu-rasa",
                                                                                                "kefu-actions"}
    assert [p["metadata"]["name"] for p in of_kind("PodDisruptionBudget")] == ["kefu-rasa"]
