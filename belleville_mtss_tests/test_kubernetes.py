"""deploy/k8s/values.yaml, checked without a cluster: the run launcher's and run coordinator's config as the chart
renders them into dagster.yaml, validated by dagster-k8s's and Dagster's own config types (the pinned releases),
the Kubernetes objects in them by the kubernetes client's models, and MTSS_HOME reachable from every run pod.

The chart renders `runLauncher.config.k8sRunLauncher` and `dagsterDaemon.runCoordinator.config.queuedRunCoordinator`
by renaming each key it knows from camelCase to snake_case (templates/helpers/instance/_run-launcher.tpl and
_run-coordinator.tpl in dagster-io/dagster, read at commit a07d616 of the stored copy); a key it does not know
it drops without a word, so the test refuses any key outside those lists."""
import copy
import re
from pathlib import Path

import pytest
import yaml

from .conftest import IN_CI

if not IN_CI:  # the test extra installs it; where CI=true a missing package is a failure, not a skip
    pytest.importorskip("dagster_k8s", reason="dagster-k8s is installed by the test extra")
import dagster_k8s  # noqa: E402,F401

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
# Keys of k8sRunLauncher the chart's template reads (the rest of the launcher's config it fills in itself).
LAUNCHER_KEYS = {"loadInclusterConfig", "kubeconfigFile", "jobNamespace", "imagePullPolicy", "image", "envConfigMaps",
                 "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "resources", "failPodOnRunFailure",
                 "schedulerName", "securityContext", "runK8sConfig"}
RUN_K8S_KEYS = {"containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"}
COORDINATOR_KEYS = {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueUseThreads",
                    "dequeueNumWorkers", "blockOpConcurrencyLimitedRuns"}


def values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def unknown(given: dict, known: set[str], where: str) -> list[str]:
    return [f"{where}.{k}: the chart does not read this key" for k in sorted(set(given) - known)]


def launcher_config(v: dict) -> tuple[dict, list[str]]:
    """K8sRunLauncher's config as the chart renders it, and the keys it would drop."""
    given = v["runLauncher"]["config"]["k8sRunLauncher"]
    problems = unknown(given, LAUNCHER_KEYS, "runLauncher.config.k8sRunLauncher")
    config = {"load_incluster_config": True, "dagster_home": "/opt/dagster/dagster_home",
              "instance_config_map": "mtss-dagster-instance", "postgres_password_secret": "mtss-dagster-postgresql",
              "service_account_name": "mtss-dagster", "image_pull_policy": "Always"}  # what the template fills in
    for key, value in given.items():
        if key in ("envConfigMaps", "envSecrets"):
            value = [item["name"] for item in value if "name" in item]
        elif key == "runK8sConfig":
            problems += unknown(value, RUN_K8S_KEYS, "runLauncher.config.k8sRunLauncher.runK8sConfig")
            value = {snake(k): part for k, part in value.items()}
        if key in LAUNCHER_KEYS:
            config[snake(key)] = value
    return config, problems


def coordinator_config(v: dict) -> tuple[dict, list[str]]:
    given = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    problems = unknown(given, COORDINATOR_KEYS, "dagsterDaemon.runCoordinator.config.queuedRunCoordinator")
    return {snake(k): part for k, part in given.items() if k in COORDINATOR_KEYS}, problems


def config_errors(config_fields: dict, config: dict) -> list[str]:
    from dagster._config import convert_potential_field, process_config
    result = process_config(convert_potential_field(config_fields).config_type, config)
    return [] if result.success else [e.message for e in result.errors]


def kubernetes_errors(config: dict) -> list[str]:
    """The Kubernetes objects in the launcher's config, read as dagster-k8s reads them at launch (camelCase keys to
    the kubernetes client's model fields) and built with those models: unknown fields and wrong shapes raise."""
    import kubernetes
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    objects = [(kubernetes.client.V1Volume, v) for v in config.get("volumes", [])]
    objects += [(kubernetes.client.V1VolumeMount, m) for m in config.get("volume_mounts", [])]
    container = config.get("run_k8s_config", {}).get("container_config")
    if container is not None:
        objects.append((kubernetes.client.V1Container, {"name": "dagster", **container}))
    errors = []
    for model, data in objects:
        try:
            k8s_model_from_dict(model, k8s_snake_case_dict(model, data))
        except Exception as exc:  # the models raise plain Exception / ValueError / TypeError
            errors.append(f"{model.__name__}: {exc}")
    return errors


def launcher_problems(v: dict) -> list[str]:
    from dagster_k8s import K8sRunLauncher
    config, problems = launcher_config(v)
    return problems + config_errors(K8sRunLauncher.config_type(), config) + kubernetes_errors(config)


def coordinator_problems(v: dict) -> list[str]:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    config, problems = coordinator_config(v)
    return problems + config_errors(QueuedRunCoordinator.config_type(), config)


def test_the_run_launcher_and_coordinator_config_are_valid_for_the_pinned_dagster_k8s():
    assert launcher_problems(values()) == []
    assert coordinator_problems(values()) == []
    config, _ = coordinator_config(values())
    assert config["tag_concurrency_limits"] == [
        {"key": "mtss/district", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


@pytest.mark.parametrize("edit, expected", [
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(jobNamspace="mtss"), "jobNamspace"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(failPodOnRunFailure="yes"), "fail_pod_on_run"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"].update(containerConfg={}),
     "containerConfg"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"].update(
        resorces={}), "resorces"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["volumeMounts"][1].update(mountPth="/x"), "mountPth"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["volumes"][1].update(
        persistentVolumeClaim={"claim": "mtss-home"}), "claim"),
])
def test_a_misspelt_key_or_a_wrong_type_in_the_run_launcher_is_refused(edit, expected):
    v = copy.deepcopy(values())
    edit(v)
    problems = launcher_problems(v)
    assert problems and any(expected in p for p in problems), problems


@pytest.mark.parametrize("edit, expected", [
    (lambda v: v.update(maxConcurentRuns=20), "maxConcurentRuns"),
    (lambda v: v.update(maxConcurrentRuns="twenty"), "max_concurrent_runs"),
    (lambda v: v["tagConcurrencyLimits"][0].update(limt=1), "limt"),
])
def test_a_misspelt_key_or_a_wrong_type_in_the_run_coordinator_is_refused(edit, expected):
    v = copy.deepcopy(values())
    edit(v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"])
    problems = coordinator_problems(v)
    assert problems and any(expected in p for p in problems), problems


def test_every_run_pod_mounts_mtss_home_from_a_read_write_many_claim():
    v = values()
    code = v["dagster-user-deployments"]["deployments"][0]
    launcher, _ = launcher_config(v)
    claims = {vol["name"]: vol["persistentVolumeClaim"]["claimName"]
              for vol in launcher["volumes"] if "persistentVolumeClaim" in vol}
    mounts = {m["name"]: m["mountPath"] for m in launcher["volume_mounts"]}
    # run pods see the same volumes, mounts, secrets and config map as the code location that staged the drop
    assert launcher["volumes"] == code["volumes"] and launcher["volume_mounts"] == code["volumeMounts"]
    assert launcher["env_secrets"] == [s["name"] for s in code["envSecrets"]]
    assert launcher["env_config_maps"] == [c["name"] for c in code["envConfigMaps"]]
    assert mounts["mtss-home"] == "/var/lib/mtss"
    pvc = yaml.safe_load((DEPLOY / "mtss-home-pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == claims["mtss-home"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # a ReadWriteOnce disk attaches to one node only
