"""The Helm chart, checked offline: rendered by Helm's own engine (helm-python-sdk, no binary, no
cluster), every object validated strictly against Kubernetes' schemas for two versions, the KEDA
and Gateway API objects against schemas of their own, and read against the programs it runs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "chatacter"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
PROGRAMS = ("chattr", "vocalizr", "visualizr")
MEDIA = ("vocalizr", "visualizr")
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest the
# validator ships.
KUBERNETES = ("1.27.0", "1.37.0")
NAMESPACE = "chat"

Object = dict[str, Any]


def values_file(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def with_ingress(values: dict[str, Any]) -> dict[str, Any]:
    """The production example behind ingress-nginx instead of a Gateway."""
    edge = {**values["edge"], "type": "ingress", "ingress": {"className": "nginx"}}
    return {**values, "edge": edge}


DEFAULTS = values_file("values.yaml")
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "production": values_file("values-production.yaml"),
    "production-ingress": with_ingress(values_file("values-production.yaml")),
    "cpu": values_file("values-cpu.yaml"),
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> list[Object]:
    manifests = chart.render(values, name="chatacter", namespace=NAMESPACE)
    objects: list[Object] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@pytest.fixture(scope="module")
def rendered(chart: helm.Chart) -> dict[str, list[Object]]:
    return {name: render(chart, values) for name, values in VALUE_SETS.items()}


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment: Object) -> Object:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Object = containers[0]
    return result


def env_names(deployment: Object) -> list[str]:
    return [variable["name"] for variable in container(deployment).get("env", [])]


def deployment_of(objects: list[Object], program: str) -> Object:
    return of_kind(objects, "Deployment")[f"chatacter-{program}"]


def render_error(chart: helm.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values, name="chatacter", namespace=NAMESPACE)
    return str(caught.value)


# --- the chart itself ---


def test_dependencies_are_declared_well_and_each_is_off_unless_asked_for(
    chart: helm.Chart,
) -> None:
    declared = chart.metadata["dependencies"]
    assert {d["name"] for d in declared} == {"qdrant", "valkey", "seaweedfs"}
    for dependency in declared:
        # A repository added by name: no chart registry's address in this repository.
        assert dependency["repository"] == f"@{dependency['name']}"
        assert dependency["condition"] == f"{dependency['name']}.enabled"
        assert chart.values[dependency["name"]]["enabled"] is False
    # Helm reads each version constraint; none is fetched here (no network), so all are missing.
    statuses = {d["name"]: d["status"] for d in helm.dependency_list(CHART)}
    assert statuses == {"qdrant": "missing", "valkey": "missing", "seaweedfs": "missing"}


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_finds_nothing_but_the_dependencies_not_downloaded(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], namespace=NAMESPACE, kube_version="v1.27.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert all("missing these dependencies" in m["error"] for m in problems), problems


def test_every_values_file_passes_the_values_schema(chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        chart.validate_schema(values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"chattr": {"replica": 2}}, "replica"),  # a misspelt key
        ({"vocalizr": {"engine": "espeak"}}, "engine"),
        ({"edge": {"type": "nodeport"}}, "type"),
        ({"vocalizr": {"autoscaling": {"minReplicas": 0}}}, "minReplicas"),
    ],
)
def test_the_values_schema_refuses_what_cannot_work(
    chart: helm.Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        chart.render(values, name="chatacter", namespace=NAMESPACE)


# --- every object valid for the cluster ---


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_core_object_is_valid_strictly_for_kubernetes(
    rendered: dict[str, list[Object]], name: str, version: str
) -> None:
    custom = {"keda.sh/v1alpha1", "gateway.networking.k8s.io/v1"}
    core = [o for o in rendered[name] if o["apiVersion"] not in custom]
    assert len(core) >= 8
    for resource in core:
        kubernetes_validate.validate(resource, version, strict=True)


def test_strict_validation_would_catch_a_misspelt_field(rendered: dict[str, list[Object]]) -> None:
    deployment = json.loads(json.dumps(deployment_of(rendered["default"], "chattr")))
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[0], strict=True)


CUSTOM_SCHEMAS = {
    "ScaledObject": json.loads((SCHEMAS / "keda-scaledobject.json").read_text()),
    "HTTPRoute": json.loads((SCHEMAS / "gateway-httproute.json").read_text()),
}


def custom_objects(rendered: dict[str, list[Object]]) -> list[Object]:
    return [o for objects in rendered.values() for o in objects if o["kind"] in CUSTOM_SCHEMAS]


def test_keda_and_gateway_objects_are_valid_strictly(rendered: dict[str, list[Object]]) -> None:
    objects = custom_objects(rendered)
    assert {o["kind"] for o in objects} == {"ScaledObject", "HTTPRoute"}
    for resource in objects:
        jsonschema.Draft202012Validator(CUSTOM_SCHEMAS[resource["kind"]]).validate(resource)
    # and the schemas refuse a field KEDA does not have
    scaled = json.loads(json.dumps(of_kind(rendered["production"], "ScaledObject")))
    spec = next(iter(scaled.values()))
    spec["spec"]["minReplicas"] = spec["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, CUSTOM_SCHEMAS["ScaledObject"])


# The models generated from KEDA's and Gateway API's own CRDs (npm; fetched once per run).
NPM_MODELS = {"@kubernetes-models/keda": "2.0.0", "@kubernetes-models/gateway-api": "2.0.0"}


@pytest.fixture(scope="module")
def crd_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for the CRD models")
    folder = tmp_path_factory.mktemp("crd-models")
    (folder / "package.json").write_text(
        json.dumps({"private": True, "type": "module", "dependencies": NPM_MODELS})
    )
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0:
        pytest.skip(f"npm could not install {NPM_MODELS}: {installed.stderr[-500:]}")
    shutil.copy(Path(__file__).with_name("crd_validate.mjs"), folder)
    return folder


def crd_errors(folder: Path, objects: list[Object]) -> list[str | None]:
    answer = subprocess.run(
        ["node", "crd_validate.mjs"],
        cwd=folder,
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    errors: list[str | None] = json.loads(answer.stdout)
    return errors


def leaf_paths(schema: dict[str, Any], path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any]]:
    """Paths to each field a schema names, descending through objects and arrays."""
    for name, child in schema.get("properties", {}).items():
        if name in ("apiVersion", "kind"):
            continue
        if "properties" in child:
            yield from leaf_paths(child, (*path, name))
        elif child.get("type") == "array" and "properties" in child.get("items", {}):
            yield from leaf_paths(child["items"], (*path, name, 0))
        else:
            yield (*path, name)


def minimal(kind: str) -> Object:
    if kind == "ScaledObject":
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": kind,
            "metadata": {"name": "m"},
            "spec": {"scaleTargetRef": {"name": "d"}, "triggers": [{"type": "t", "metadata": {}}]},
        }
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "m"},
        "spec": {"parentRefs": [{"name": "g"}], "rules": [{"backendRefs": [{"name": "s"}]}]},
    }


def with_wrong_type(resource: Object, path: tuple[Any, ...]) -> Object:
    """A copy with the field at `path` set to a value of no type any schema allows there."""
    copy: Any = json.loads(json.dumps(resource))
    node = copy
    for step, following in zip(path, [*path[1:], None], strict=True):
        if following is None:
            node[step] = [[["wrong"]]]
        else:
            if isinstance(node, dict):
                node = node.setdefault(step, [{}] if following == 0 else {})
            else:
                node = node[step]
    result: Object = copy
    return result


@pytest.mark.slow
def test_keda_and_gateway_objects_pass_their_projects_own_models(
    rendered: dict[str, list[Object]], crd_validator: Path
) -> None:
    objects = custom_objects(rendered)
    assert crd_errors(crd_validator, objects) == [None] * len(objects)


@pytest.mark.slow
def test_every_field_our_strict_schemas_allow_is_a_field_of_the_real_crds(
    crd_validator: Path,
) -> None:
    """Our schemas refuse unknown fields, which the CRD models do not check; so each field ours
    allows must be one the models type-check: a wrong type there is refused."""
    probes: list[Object] = []
    paths: list[str] = []
    for kind, schema in CUSTOM_SCHEMAS.items():
        assert crd_errors(crd_validator, [minimal(kind)]) == [None]
        for path in leaf_paths(schema):
            if path[:1] == ("metadata",):
                continue
            probes.append(with_wrong_type(minimal(kind), path))
            paths.append(f"{kind} data/{'/'.join(map(str, path))}")
    assert len(probes) > 30
    # refused for that field's type, not for something else the probe lacks (a required sibling)
    unknown = [
        path
        for path, error in zip(paths, crd_errors(crd_validator, probes), strict=True)
        if not re.search(re.escape(path.split(" ")[1]) + r"(/0)* must be", error or "")
    ]
    assert not unknown, f"fields the real CRDs do not know: {unknown}"


# --- the objects fit together and fit the programs ---


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_services_budgets_and_scalers_point_at_the_deployments(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == {f"chatacter-{p}" for p in PROGRAMS}
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    for service_name, service in of_kind(objects, "Service").items():
        assert selects(service["spec"]["selector"]) == [service_name]
        port = service["spec"]["ports"][0]
        assert port["targetPort"] == "http"
        assert port["port"] == container(deployments[service_name])["ports"][0]["containerPort"]
    for deployment_name, deployment in deployments.items():
        assert selects(deployment["spec"]["selector"]["matchLabels"]) == [deployment_name]
    for budget in of_kind(objects, "PodDisruptionBudget").values():
        assert len(selects(budget["spec"]["selector"]["matchLabels"])) == 1
    for scaler in [*of_kind(objects, "ScaledObject").values()]:
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments
        assert "replicas" not in deployments[scaler["spec"]["scaleTargetRef"]["name"]]["spec"]
    for scaler in of_kind(objects, "HorizontalPodAutoscaler").values():
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_each_program_listens_where_its_probes_and_service_look(
    rendered: dict[str, list[Object]], name: str
) -> None:
    for program in PROGRAMS:
        main = container(deployment_of(rendered[name], program))
        command = main["command"]
        assert command[0] == program
        assert command[command.index("--host") + 1] == "0.0.0.0"
        port = int(command[command.index("--port") + 1])
        assert main["ports"] == [{"name": "http", "containerPort": port}]
        # contract.md: /livez answers while the process serves, /readyz once it can work
        assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_pods_run_as_a_user_on_a_read_only_root(
    rendered: dict[str, list[Object]], name: str
) -> None:
    for program in PROGRAMS:
        deployment = deployment_of(rendered[name], program)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        context = container(deployment)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert {"/tmp", "/data"} <= mounts


def test_the_dockerfile_user_is_the_one_the_pods_run_as() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    user = re.findall(r"^USER (\d+)$", dockerfile, re.MULTILINE)
    assert user == [str(DEFAULTS["podSecurityContext"]["runAsUser"])]


def gpus(deployment: Object) -> Any:
    return container(deployment)["resources"].get("limits", {}).get("nvidia.com/gpu")


def test_media_services_ask_for_a_gpu_and_the_cpu_values_ask_for_none(
    rendered: dict[str, list[Object]],
) -> None:
    from visualizr.engines import ENGINES as VIDEO_ENGINES
    from vocalizr.engines import ENGINES as SPEECH_ENGINES

    registries = {"vocalizr": set(SPEECH_ENGINES), "visualizr": set(VIDEO_ENGINES)}
    for name, objects in rendered.items():
        assert gpus(deployment_of(objects, "chattr")) is None
        for program in MEDIA:
            deployment = deployment_of(objects, program)
            engine = {e["name"]: e.get("value") for e in container(deployment)["env"]}[
                f"{program.upper()}_ENGINE"
            ]
            assert engine in registries[program]
            if name == "cpu":
                assert gpus(deployment) is None and engine in ("piper", "warp")
                assert "weights" not in json.dumps(deployment)
            else:
                assert gpus(deployment) == 1 and engine in ("xtts", "musetalk")
    claims = of_kind(rendered["default"], "PersistentVolumeClaim")
    assert list(claims) == ["chatacter-weights"]


def settings_names(program: str) -> set[str]:
    """Environment variable names a program's Settings reads (and their aliases)."""
    module = __import__(f"{program}.settings", fromlist=["Settings"])
    settings = module.Settings
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            names.add(str(choice).upper())
    return names


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_variable_given_to_a_program_is_one_of_its_settings(
    rendered: dict[str, list[Object]], name: str
) -> None:
    for program in PROGRAMS:
        # contract.md: the media store names and the standard S3 variables (the store helper's)
        store = {f"{program.upper()}_MEDIA_STORE", "AWS_ENDPOINT_URL", "AWS_REGION"}
        store |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        known = settings_names(program) | store
        unknown = set(env_names(deployment_of(rendered[name], program))) - known
        assert not unknown, f"{program} is given {unknown}, which it does not read"


def test_production_shares_state_and_media_and_keys_match_between_programs(
    rendered: dict[str, list[Object]],
) -> None:
    objects = rendered["production"]
    env = {
        program: {e["name"]: e for e in container(deployment_of(objects, program))["env"]}
        for program in PROGRAMS
    }
    assert env["chattr"]["CHATTR_REDIS_URL"]["value"] == "redis://chatacter-valkey:6379/0"
    assert env["chattr"]["CHATTR_QDRANT_URL"]["value"] == "http://chatacter-qdrant:6333"
    for program in PROGRAMS:
        store = env[program][f"{program.upper()}_MEDIA_STORE"]["value"]
        assert store == f"s3://chatacter-media/{program}"
        assert env[program]["AWS_ENDPOINT_URL"]["value"] == "http://chatacter-seaweedfs-s3:8333"

    def secret_key(program: str, variable: str) -> str:
        reference = env[program][variable]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == "chatacter-keys"
        return str(reference["key"])

    # what a service guards with is what its callers send
    assert secret_key("vocalizr", "VOCALIZR_API_KEY") == secret_key(
        "chattr", "CHATTR_VOCALIZR_API_KEY"
    )
    assert secret_key("vocalizr", "VOCALIZR_API_KEY") == secret_key(
        "visualizr", "VISUALIZR_VOCALIZR_API_KEY"
    )
    assert secret_key("visualizr", "VISUALIZR_API_KEY") == secret_key(
        "chattr", "CHATTR_VISUALIZR_API_KEY"
    )
    # the services are reached at their Services' names and ports
    services = of_kind(objects, "Service")
    for program in MEDIA:
        url = env["chattr"][f"CHATTR_{program.upper()}_URL"]["value"]
        port = services[f"chatacter-{program}"]["spec"]["ports"][0]["port"]
        assert url == f"http://chatacter-{program}:{port}"
    assert env["visualizr"]["VISUALIZR_VOCALIZR_URL"]["value"] == "http://chatacter-vocalizr:8001"
    assert env["chattr"]["CHATTR_PUBLIC_URL"]["value"] == "https://chat.example.com"


def test_default_secret_holds_generated_keys_only(
    rendered: dict[str, list[Object]],
) -> None:
    (secret,) = of_kind(rendered["default"], "Secret").values()
    assert set(secret["data"]) == {"vocalizr-api-key", "visualizr-api-key", "chattr-browser-secret"}
    assert len(base64.b64decode(secret["data"]["chattr-browser-secret"])) == 40
    env = {e["name"]: e for e in container(deployment_of(rendered["default"], "chattr"))["env"]}
    reference = env["CHATTR_BROWSER_SECRET"]["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "chattr-browser-secret"
    assert not of_kind(rendered["production"], "Secret")  # production names its own


def test_the_edge_keeps_a_browser_on_its_pod(rendered: dict[str, list[Object]]) -> None:
    (ingress,) = of_kind(rendered["production-ingress"], "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "affinity-mode"] == "persistent"
    assert annotations[prefix + "session-cookie-name"] == "chatacter-route"
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) > 15  # Gradio's heartbeat
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "chatacter-chattr", "port": {"name": "http"}}
    assert not of_kind(rendered["production-ingress"], "HTTPRoute")

    (route,) = of_kind(rendered["production"], "HTTPRoute").values()
    (rule,) = route["spec"]["rules"]
    assert rule["sessionPersistence"]["type"] == "Cookie"
    assert rule["sessionPersistence"]["sessionName"] == "chatacter-route"
    assert rule["backendRefs"] == [{"name": "chatacter-chattr", "port": 7860}]
    assert not of_kind(rendered["production"], "Ingress")
    assert not of_kind(rendered["default"], "Ingress")
    assert not of_kind(rendered["default"], "HTTPRoute")


def exported_metrics(program: str) -> set[str]:
    """Metric names the service's own Metrics class exports."""
    from chatacter_common.service import JobQueue, ServiceMetrics
    from visualizr.service import Metrics as VideoMetrics
    from vocalizr.metrics import Metrics as SpeechMetrics

    jobs = JobQueue(4, 1, "jobs")
    metrics: ServiceMetrics = SpeechMetrics(jobs) if program == "vocalizr" else VideoMetrics(jobs)
    registry = metrics.registry
    return {sample.name for family in registry.collect() for sample in family.samples}


def test_keda_scales_each_service_on_its_own_queue_depth_metric(
    rendered: dict[str, list[Object]],
) -> None:
    scalers = of_kind(rendered["production"], "ScaledObject")
    assert set(scalers) == {"chatacter-vocalizr", "chatacter-visualizr"}
    production = VALUE_SETS["production"]
    for program in MEDIA:
        spec = scalers[f"chatacter-{program}"]["spec"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        (metric,) = re.findall(r"\b(\w+_queue_depth)\b", query)
        assert metric in exported_metrics(program)
        assert f'namespace="{NAMESPACE}"' in query
        # below one pod's queue bound, or no pod would ever be added
        threshold = int(trigger["metadata"]["threshold"])
        max_queue = production[program].get("maxQueue", DEFAULTS[program]["maxQueue"])
        assert 0 < threshold < max_queue
        assert spec["minReplicaCount"] >= 1
    assert not of_kind(rendered["default"], "ScaledObject")
    (hpa,) = of_kind(rendered["production"], "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


# --- refusals, with the reason ---


def test_production_chattr_replicas_without_redis_and_qdrant_is_refused(
    chart: helm.Chart,
) -> None:
    values = {
        **VALUE_SETS["production"],
        "valkey": {"enabled": False},
        "qdrant": {"enabled": False},
    }
    message = render_error(chart, values)
    assert "chattr may run 8 replicas" in message
    assert "a shared Redis (set chattr.redisUrl, or valkey.enabled=true)" in message
    assert "a Qdrant server (set chattr.qdrantUrl, or qdrant.enabled=true)" in message
    assert "media store" not in message  # that one is there
    # each on its own is enough to refuse; given an outside Redis and Qdrant it renders
    only_qdrant_missing = {**values, "chattr": {**values["chattr"], "redisUrl": "redis://r:6379"}}
    assert "Redis" not in render_error(chart, only_qdrant_missing)
    outside = {
        **only_qdrant_missing,
        "chattr": {**only_qdrant_missing["chattr"], "qdrantUrl": "http://q:6333"},
    }
    assert deployment_of(render(chart, outside), "chattr")


def test_several_chattr_replicas_on_default_values_are_refused(chart: helm.Chart) -> None:
    message = render_error(chart, {"chattr": {"replicas": 3}})
    assert "chattr may run 3 replicas" in message
    assert "shared media store" in message
    assert render(chart, {"chattr": {"replicas": 1}})


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"vocalizr": {"replicas": 2}}, "vocalizr may run several replicas"),
        (
            {
                "mediaStore": {"bucket": "media"},
                "visualizr": {
                    "autoscaling": {
                        "enabled": True,
                        "targetQueueDepth": 8,
                        "prometheus": {"serverAddress": "http://p:9090"},
                    }
                },
            },
            "targetQueueDepth (8) must be below visualizr.maxQueue (8)",
        ),
        (
            {"mediaStore": {"bucket": "media"}, "vocalizr": {"autoscaling": {"enabled": True}}},
            "vocalizr.autoscaling needs vocalizr.autoscaling.prometheus.serverAddress",
        ),
        ({"edge": {"type": "ingress"}}, "edge.type=ingress needs edge.host"),
        (
            {"edge": {"type": "gateway", "host": "a.example.com"}},
            "needs edge.gateway.parentRefs",
        ),
        ({"weights": {"create": False}}, "vocalizr.engine=xtts reads model weights"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_reason(
    chart: helm.Chart, values: dict[str, Any], says: str
) -> None:
    assert says in render_error(chart, values)


# --- dashboards and alerts ---

MONITORING = {"monitoring": {"dashboard": {"enabled": True}, "rules": {"enabled": True}}}


def chattr_metric_names() -> set[str]:
    """The series chattr's /metrics has once each label has been seen."""
    from chattr.reply import TurnIssue, TurnState
    from chattr.turn.metrics import STAGES, STEPS, TurnMetrics

    metrics = TurnMetrics()
    state = TurnState("s", "c", "m", timings=dict.fromkeys([*STAGES, *STEPS], 1.0))
    state.errors.append(TurnIssue("vocalizr", "down"))
    metrics.count_turn("done", state)
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def service_metric_names(program: str) -> set[str]:
    """A service's series once it has counted a job and an error."""
    from chatacter_common.service import JobQueue
    from visualizr.service import Metrics as VideoMetrics
    from vocalizr.metrics import Metrics as SpeechMetrics

    jobs = JobQueue(4, 1, "jobs")
    metrics = SpeechMetrics(jobs) if program == "vocalizr" else VideoMetrics(jobs)
    metrics.count_job("engine", 1.0, 1.0)
    metrics.count_error("queue_full")
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def queried_metrics(expression: str) -> set[str]:
    return set(re.findall(r"\b((?:chattr|vocalizr|visualizr)_\w+)\s*[{(\[]", expression))


def test_monitoring_is_off_by_default(rendered: dict[str, list[Object]]) -> None:
    for objects in rendered.values():
        assert not [o for o in objects if o["kind"] == "PrometheusRule"]
        assert not [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_loads(chart: helm.Chart) -> None:
    objects = render(chart, MONITORING)
    configmap = of_kind(objects, "ConfigMap")["chatacter-dashboard"]
    for version in KUBERNETES:
        kubernetes_validate.validate(configmap, version, strict=True)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    dashboard = json.loads(text)
    titles = [panel["title"] for panel in dashboard["panels"]]
    for wanted in ("timeline", "p95", "Queue depth", "Errors by service"):
        assert any(wanted in title for title in titles), (wanted, titles)
    known = chattr_metric_names() | service_metric_names("vocalizr")
    known |= service_metric_names("visualizr")
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= queried_metrics(target["expr"])
            assert 'namespace="$namespace"' in target["expr"], target["expr"]
    assert queried and queried <= known, queried - known
    assert {"chattr_turn_seconds_bucket", "chattr_turn_errors_total"} <= queried
    assert {"vocalizr_queue_depth", "visualizr_queue_depth"} <= queried


def promtool() -> str:
    found = shutil.which("promtool")
    assert found is not None, (
        "promtool is missing: `make test` installs it (Debian's `prometheus` package, "
        "`apt-get install -y prometheus`)"
    )
    return found


def test_the_alerts_are_valid_rules_on_metrics_the_programs_export(
    chart: helm.Chart, tmp_path: Path
) -> None:
    values: dict[str, Any] = {
        "monitoring": {"rules": {"enabled": True, "labels": {"release": "prom"}}}
    }
    (rule,) = of_kind(render(chart, values), "PrometheusRule").values()
    assert rule["metadata"]["labels"]["release"] == "prom"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "ChatacterFirstAudioSlow",
        "ChatacterMediaErrors",
        "ChatacterVocalizrQueueSaturated",
        "ChatacterVisualizrQueueSaturated",
    }
    known = chattr_metric_names() | service_metric_names("vocalizr")
    known |= service_metric_names("visualizr")
    for name, alert in alerts.items():
        assert queried_metrics(alert["expr"]) <= known, name
        assert f'namespace="{NAMESPACE}"' in alert["expr"], name
    assert 'stage="first_audio"' in alerts["ChatacterFirstAudioSlow"]["expr"]
    # A pod's bound, from its values: 0.8 of vocalizr's 16 and visualizr's 8.
    assert alerts["ChatacterVocalizrQueueSaturated"]["expr"].endswith(">= 12.8")
    assert alerts["ChatacterVisualizrQueueSaturated"]["expr"].endswith(">= 6.4")

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    # and promtool does refuse a broken expression
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "histogram_quantile(0.95, sum by (le) ("
    rules.write_text(yaml.safe_dump(rule["spec"]))
    broken = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True)
    assert broken.returncode != 0
