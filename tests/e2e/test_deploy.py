"""Deploy artefacts (issue 12): the kustomize overlays render with the real
`kubectl kustomize`, pass `kubernetes-validate --strict` against current
Kubernetes versions, carry what a well-behaved workload needs, hold a
configuration modelgate accepts; the Dockerfile's build step
(scripts/build-static.sh) produces a static binary that runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kustomize"
OVERLAYS = ["standalone", "istio-ext-authz"]
# The oldest and newest minor versions we validate against (kubernetes-validate 1.37 ships schemas up to 1.37).
K8S_VERSIONS = ["1.32.0", "1.37.0"]
VALIDATE = Path(sys.executable).with_name("kubernetes-validate")


def kubectl() -> str:
    path = shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl (1.32, with kustomize v5) is needed to render deploy/kustomize")
    return path


def render(target: Path) -> list[dict]:
    out = subprocess.run([kubectl(), "kustomize", str(target)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)s", text)
    assert m, f"expected a duration in seconds, got {text!r}"
    return int(m.group(1))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay, tmp_path):
    docs = render(KUSTOMIZE / "overlays" / overlay)
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert VALIDATE.exists(), f"{VALIDATE} missing: pip install -r tests/requirements.txt"
    for version in K8S_VERSIONS:
        out = subprocess.run([str(VALIDATE), "--strict", "--quiet", "-k", version, str(path)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"kubernetes-validate {version}:\n{out.stdout}{out.stderr}"
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
                            "ConfigMap", "Service", "Service", "Deployment", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "NetworkPolicy"])
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")} == {"modelgate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workload_is_hardened_probed_and_drains(overlay):
    docs = render(KUSTOMIZE / "overlays" / overlay)
    dep = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}

    config = yaml.safe_load(by_kind(docs, "ConfigMap", "modelgate-config")["data"]["modelgate.yaml"])
    assert config["admin"]["address"].endswith(f":{ports['admin']}")
    assert config["listen"]["address"].endswith(f":{ports['http']}")
    drain = seconds(config["listen"]["drain_timeout"])
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    assert pre_stop + drain < grace <= pre_stop + drain + 10, "terminationGracePeriodSeconds matches the drain"

    sa = pod["serviceAccountName"]
    role = by_kind(docs, "Role")
    assert {"list", "watch"} <= set(role["rules"][0]["verbs"]) and role["rules"][0]["resources"] == ["secrets"]
    cr = by_kind(docs, "ClusterRole")
    assert {(r["resources"][0], tuple(r["verbs"])) for r in cr["rules"]} == {
        ("tokenreviews", ("create",)), ("subjectaccessreviews", ("create",))}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        assert by_kind(docs, kind)["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "modelgate"}]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert by_kind(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= selector.items()
    assert by_kind(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert by_kind(docs, "Service", "modelgate")["spec"]["selector"] == selector

    svc_ports = {p["name"]: p for p in by_kind(docs, "Service", "modelgate")["spec"]["ports"]}
    np_ports = {p["port"] for rule in by_kind(docs, "NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]}
    if overlay == "istio-ext-authz":
        assert ports["grpc-ext-authz"] == 9001
        assert svc_ports["grpc-ext-authz"]["port"] == 9001 and svc_ports["grpc-ext-authz"]["appProtocol"] == "grpc"
        assert "grpc-ext-authz" in np_ports
    else:
        assert "grpc-ext-authz" not in ports and "grpc-ext-authz" not in svc_ports
    assert "http" in np_ports and "admin" in np_ports


def test_configmap_config_is_valid(tmp_path, run_modelgate):
    docs = render(KUSTOMIZE / "overlays" / "standalone")
    cfg = tmp_path / "modelgate.yaml"
    cfg.write_text(by_kind(docs, "ConfigMap", "modelgate-config")["data"]["modelgate.yaml"])
    r = run_modelgate(["validate", "--config", str(cfg)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_servicemonitor_component(tmp_path):
    """The optional ServiceMonitor (a Prometheus Operator CRD, so outside the
    built-in schemas) composes with an overlay and selects the admin Service."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "modelgate",
        "resources": [os.path.relpath(KUSTOMIZE / "overlays" / "standalone", tmp_path)],
        "components": [os.path.relpath(KUSTOMIZE / "components" / "servicemonitor", tmp_path)],
    }))
    docs = render(tmp_path)
    sm = by_kind(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["metadata"]["namespace"] == "modelgate"
    admin = by_kind(docs, "Service", "modelgate-admin")
    assert sm["spec"]["selector"]["matchLabels"].items() <= admin["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in admin["spec"]["ports"]}
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_dockerfile_uses_the_static_build_on_a_minimal_nonroot_base():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) == 2
    assert re.search(r"(distroless/static|^scratch$)", stages[-1]), stages[-1]
    final = text.split("FROM", 2)[-1]
    user = re.search(r"^USER\s+(\S+)", final, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root")
    assert "scripts/build-static.sh dist" in text
    assert (ROOT / "scripts" / "build-static.sh").stat().st_mode & 0o111


def test_static_build_step_gives_a_static_binary_that_runs():
    """Runs the Dockerfile's build step. Profile `dev` by default to keep CI
    cheap (the flags and target are the same as the image's `dist` build);
    MODELGATE_STATIC_PROFILE=dist checks the image's exact build."""
    profile = os.environ.get("MODELGATE_STATIC_PROFILE", "dev")
    out = subprocess.run([str(ROOT / "scripts" / "build-static.sh"), profile], capture_output=True, text=True,
                         timeout=3600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    binary = Path(out.stdout.strip().splitlines()[-1])
    desc = subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout
    assert "statically linked" in desc or "static-pie linked" in desc, desc
    assert "interpreter" not in desc, desc
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("modelgate "), version


def test_image_build_and_its_pgo_profile_agree():
    """The image's `dist` build is optimised with deploy/pgo/modelgate.profdata
    (scripts/pgo-train.sh). build-static.sh uses it only when the profile was
    made by rustc's own LLVM major (deploy/pgo/llvm-major), and rejects an
    unknown MODELGATE_PGO mode before building anything."""
    pgo = ROOT / "deploy" / "pgo"
    assert (pgo / "modelgate.profdata").stat().st_size > 0
    assert re.fullmatch(r"\d+\n", (pgo / "llvm-major").read_text())
    text = (ROOT / "scripts" / "build-static.sh").read_text()
    assert "deploy/pgo/modelgate.profdata" in text and "-Cprofile-use=" in text
    out = subprocess.run([str(ROOT / "scripts" / "build-static.sh"), "dist"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "MODELGATE_PGO": "sometimes"})
    assert out.returncode == 2, out
    assert "MODELGATE_PGO must be use, off or generate=DIR (got 'sometimes')" in out.stderr
