"""`edgeproxy inject`: --dry-run on files and standard input, with every workload kind that
holds pods; bad settings and certificates refused with their reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.cli import main
from tests.support.admission import validate

REPO = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
}


def workload(kind: str, api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "shop"}, "spec": spec}


SELECTOR = {"selector": {"matchLabels": {"app": "shop"}}}
WORKLOADS = {
    "Pod": workload("Pod", "v1", TEMPLATE["spec"]),
    "Deployment": workload("Deployment", "apps/v1", {**SELECTOR, "template": TEMPLATE}),
    "StatefulSet": workload(
        "StatefulSet", "apps/v1", {**SELECTOR, "serviceName": "shop", "template": TEMPLATE}
    ),
    "DaemonSet": workload("DaemonSet", "apps/v1", {**SELECTOR, "template": TEMPLATE}),
    "Job": workload(
        "Job",
        "batch/v1",
        {"template": {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}},
    ),
    "CronJob": workload(
        "CronJob",
        "batch/v1",
        {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        **TEMPLATE,
                        "spec": {**TEMPLATE["spec"], "restartPolicy": "OnFailure"},
                    }
                }
            },
        },
    ),
}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]
    if document["kind"] == "Pod":
        return spec
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template_spec: dict[str, Any] = spec["template"]["spec"]
    return template_spec


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_dry_run_injects_the_pods_of_every_workload_kind_in_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all([*WORKLOADS.values(), CONFIG_MAP]))
    assert main(["inject", "--dry-run", str(path)]) == 0
    out, err = capsys.readouterr()
    documents = list(yaml.safe_load_all(out))
    assert documents[-1] == CONFIG_MAP
    for document in documents[:-1]:
        validate(document, "1.31")
        spec = pod_spec(document)
        assert [c["name"] for c in spec["initContainers"]] == ["edgeproxy"]
        assert spec["containers"][0]["env"][0]["name"] == "OPENAI_BASE_URL"
    assert err.splitlines() == [f"{kind}/shop: injected (native sidecar)" for kind in WORKLOADS]


def test_dry_run_reads_standard_input_and_honours_settings_and_opt_out(tmp_path: Path) -> None:
    """The two items share their pod spec, which YAML writes as an anchor and an alias: the
    opted-out pod must stay as it was all the same."""
    settings = tmp_path / "injector.yaml"
    settings.write_text("native_sidecar: false\nimage: registry.example.com/edgeproxy:9\n")
    opted_out = {**WORKLOADS["Pod"], "metadata": {"name": "manual"}}
    opted_out["metadata"]["annotations"] = {"edgeproxy.io/inject": "false"}
    listed = {"apiVersion": "v1", "kind": "List", "items": [WORKLOADS["Deployment"], opted_out]}
    done = subprocess.run(
        [sys.executable, "-m", "edgeproxy", "inject", "--dry-run", "--settings", str(settings)],
        input=yaml.safe_dump(listed),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    deployment, pod = yaml.safe_load(done.stdout)["items"]
    validate(deployment, "1.28")
    sidecar = pod_spec(deployment)["containers"][-1]
    assert (sidecar["name"], sidecar["image"]) == ("edgeproxy", "registry.example.com/edgeproxy:9")
    assert pod == opted_out
    assert done.stderr.splitlines() == [
        "List/Deployment/shop: injected (container)",
        "List/Pod/manual: opted out",
    ]


def test_dry_run_prints_why_a_pod_was_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = {**WORKLOADS["Pod"], "metadata": {"name": "p", "annotations": {"edgeproxy.io/port": "0"}}}
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    assert main(["inject", "--dry-run", str(path)]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out) == pod
    assert "Pod/p: edgeproxy not injected: edgeproxy.io/port: '0' is not a port number" in err


def test_a_bad_injector_environment_fails_only_the_inject_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEPROXY_INJECTOR_PORT", "https")
    assert main(["print-default-config"]) == 0
    with pytest.raises(SystemExit) as exited:
        main(["inject"])
    assert exited.value.code == 2
    assert "argument --port: invalid int value: 'https'" in capsys.readouterr().err


def test_a_bad_log_level_stops_the_webhook_before_it_serves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEPROXY_LOG_LEVEL", "loud")
    assert main(["inject"]) == 1
    assert "EDGEPROXY_LOG_LEVEL must be one of debug, info" in capsys.readouterr().err


@pytest.mark.usefixtures("in_tmp_path")
@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"s.yaml": "port: http\n"}, ["--settings", "s.yaml", "--dry-run"], "  port: expected"),
        ({"m.yaml": "kind: [\n"}, ["--dry-run", "m.yaml"], "not valid YAML"),
        ({}, ["--dry-run", "absent.yaml"], "cannot read absent.yaml"),
        ({}, ["--cert", "absent.crt", "--key", "absent.key"], "cannot load absent.crt"),
    ],
    ids=["settings", "manifest", "missing manifest", "missing certificate"],
)
def test_unusable_input_exits_1_saying_why(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert main(["inject", *args]) == 1
    assert message in capsys.readouterr().err
