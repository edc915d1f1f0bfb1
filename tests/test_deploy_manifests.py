"""The Kubernetes manifests under deploy/ are valid and say what regdb needs.

Offline, no cluster: every YAML document under deploy/ (kustomization files aside) is checked
against the OpenAPI schema of one fixed Kubernetes version with kubernetes-validate in strict mode
(an unknown or misspelt field fails), and so is the output of every kustomization, rendered with
the kustomize built into kubectl. The rendered overlays then meet regdb's own rules:

- the API has readiness on /readyz and liveness on /healthz, on its port (/healthz never restarts
  a pod for a Redis outage; /readyz takes it out of the Service meanwhile);
- every container has cpu and memory requests and limits, runs as a non-root user without
  privilege escalation or capabilities, on a read-only root (the "restricted" Pod Security
  Standard the namespace enforces);
- every image has a tag, never `latest`; regdb's own is the placeholder `regdb:<project version>`;
- the Service `regdb` selects the API pods only, on the API's port; a PDB covers them;
- ingress reaches the API on its port, Redis from regdb's pods, and nothing else;
- each regdb container's environment (ConfigMap, Secret, env, as the kubelet assembles it) passes
  regdb's own `Settings.from_env` and names only variables it reads: a typo or a bad value would
  otherwise show up as a crash loop;
- an in-cluster Redis URL names a Service of the overlay that reaches a Redis running with
  README's production settings (appendonly, hash-max-listpack-value 8192) on a volume claim;
- the Dockerfile's user and port are the manifests', and it copies every package.

Each rule is also run on a deliberately broken copy, which must be reported.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from regdb.secret_box import generate_key
from regdb.settings import Settings, SettingsError
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
REGDB_DEPLOY = DEPLOY / "regdb"

KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version whose schema the manifests must satisfy (deploy/README.md)."""
OVERLAYS = ("redis-in-cluster", "redis-external")
"""The deployable kustomizations; `base` is regdb without its Redis."""
REGDB_IMAGE = "regdb"
"""The placeholder image name every regdb container uses; kustomize's `images:` rewrites it."""
API_PATHS = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
PENDING_ENV: dict[str, str] = {}
"""Variables the manifests may set before regdb's Settings reads them."""

KEY_PLACEHOLDER = "change-me-run-regdb-secrets-generate-key"
"""REGDB_SECRET_KEYS in the secrets.env examples, which regdb refuses (not base64 of 32 bytes)."""
EXAMPLE_KEY = generate_key()

Doc = dict[str, Any]


# ---------------------------------------------------------------------------------- loading


def _yaml_files() -> list[Path]:
    return sorted(
        p
        for p in DEPLOY.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.name != "kustomization.yaml"
    )


def _load(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _kustomize_command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    skip_or_fail("neither kubectl nor kustomize is installed (the machine image has kubectl)")
    raise AssertionError("unreachable")


def render(kustomization: str, tmp_path: Path, secrets: str | None = None) -> list[Doc]:
    """Render deploy/regdb/<kustomization> as `kubectl apply -k` would, with the overlay's
    secrets.env made from its example (or from `secrets`), in a copy: never a real secrets.env."""
    tree = tmp_path / "regdb"
    shutil.copytree(REGDB_DEPLOY, tree, ignore=shutil.ignore_patterns("secrets.env"))
    example = tree / kustomization / "secrets.env.example"
    if example.exists():
        # the example's key is a placeholder regdb refuses: an operator puts a real one there
        text = example.read_text().replace(KEY_PLACEHOLDER, EXAMPLE_KEY)
        text = text if secrets is None else secrets
        (tree / kustomization / "secrets.env").write_text(text)
    out = subprocess.run(
        [*_kustomize_command(), str(tree / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kustomize failed on {kustomization}: {out.stderr}"
    return _load(out.stdout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    return {k: render(k, tmp_path_factory.mktemp(k)) for k in ("base", *OVERLAYS)}


# ----------------------------------------------------------------------------- the checks


def schema_problems(docs: list[Doc]) -> list[str]:
    """Strict validation against the fixed Kubernetes version's schema."""
    found = (_schema_problem(json.dumps(doc, sort_keys=True)) for doc in docs)
    return [p for p in found if p is not None]


@functools.cache
def _schema_problem(doc_json: str) -> str | None:
    # cached by content: the breakage tests re-check many unchanged documents
    doc = json.loads(doc_json)
    what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{what}: {'.'.join(str(p) for p in exc.path)}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return f"{what}: {exc.message}"
    return None


def _workloads(docs: list[Doc]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"))


def _pod(workload: Doc) -> Doc:
    pod = workload["spec"]["template"]
    assert isinstance(pod, dict), pod
    return pod


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def image_problems(docs: list[Doc], version: str) -> list[str]:
    """Tags everywhere, never latest; regdb's own image is the versioned placeholder."""
    problems = []
    for w in _workloads(docs):
        for c in _pod(w)["spec"]["containers"]:
            image, where = c["image"], f"{w['metadata']['name']}/{c['name']}"
            tag = _image_tag(image)
            if tag is None or tag == "latest":
                problems.append(f"{where}: image {image!r} needs a fixed tag, not latest")
            if image.split(":", 1)[0] == REGDB_IMAGE and image != f"{REGDB_IMAGE}:{version}":
                problems.append(f"{where}: regdb's image must be {REGDB_IMAGE}:{version}")
    return problems


def pod_problems(docs: list[Doc]) -> list[str]:
    """Resources and the restricted security profile on every container."""
    problems = []
    for w in _workloads(docs):
        spec, name = _pod(w)["spec"], w["metadata"]["name"]
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True or not pod_sc.get("runAsUser"):
            problems.append(f"{name}: the pod must run as a non-root user id")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken must be false")
        if spec.get("enableServiceLinks") is not False:
            problems.append(f"{name}: enableServiceLinks must be false (REGDB_* service variables)")
        for c in spec["containers"]:
            where = f"{name}/{c['name']}"
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.append(f"{where}: resources.{kind}.{r} is not set")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem must be true")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities must drop ALL")
    return problems


def _by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _regdb_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for w in _workloads(docs):
        for c in _pod(w)["spec"]["containers"]:
            if c["image"].split(":", 1)[0] == REGDB_IMAGE:
                yield w, c


def _role(container: Doc) -> str:
    args = container.get("args") or container.get("command") or ["?"]
    return str(args[0])


def _port_number(container: Doc, port: int | str) -> int | None:
    for p in container.get("ports", []):
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    return None


def _decoded(secret: Doc) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def effective_env(container: Doc, docs: list[Doc]) -> tuple[dict[str, str], list[str]]:
    """The environment the kubelet would give the container (envFrom, then env with $(VAR)
    expansion), and the references it could not resolve."""
    maps = {n: d.get("data") or {} for n, d in _by_kind(docs, "ConfigMap").items()}
    secrets = {n: _decoded(d) for n, d in _by_kind(docs, "Secret").items()}
    env: dict[str, str] = {}
    missing = []
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            kind, ref, found = (
                "ConfigMap",
                src["configMapRef"],
                maps.get(src["configMapRef"]["name"]),
            )
        else:
            kind, ref, found = "Secret", src["secretRef"], secrets.get(src["secretRef"]["name"])
        if found is None:
            if not ref.get("optional"):
                missing.append(f"{kind} {ref['name']}")
            continue
        env.update(found)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                var["value"],
            )
            continue
        frm = var["valueFrom"]
        if "secretKeyRef" in frm:
            ref, table = frm["secretKeyRef"], secrets.get(frm["secretKeyRef"]["name"], {})
        else:
            ref, table = frm["configMapKeyRef"], maps.get(frm["configMapKeyRef"]["name"], {})
        value = table.get(ref["key"])
        if value is not None:
            env[var["name"]] = value
        elif not ref.get("optional"):
            missing.append(f"{ref['name']}.{ref['key']} for {var['name']}")
    return env, missing


class _Recording(Mapping[str, str]):
    """An environment that remembers which names were read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        # not `values`: that would shadow Mapping.values()
        self._values, self.read = values, set[str]()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def settings_names() -> set[str]:
    """Every variable Settings.from_env reads, found by running it (the Sentinel branch too)."""
    names: set[str] = set()
    for values in ({}, {"REDIS_SENTINELS": "127.0.0.1:26379"}):
        env = _Recording(values)
        Settings.from_env(env)
        names |= env.read
    return names


def regdb_env_problems(docs: list[Doc]) -> list[str]:
    """Each regdb container's environment is one regdb accepts, for a cluster."""
    problems = []
    known = settings_names() | set(PENDING_ENV)
    for w, c in _regdb_containers(docs):
        where = f"{w['metadata']['name']}/{c['name']}"
        env, missing = effective_env(c, docs)
        problems += [f"{where}: cannot resolve {m}" for m in missing]
        problems += [f"{where}: regdb reads no variable {n}" for n in sorted(set(env) - known)]
        try:
            s = Settings.from_env(env)
        except SettingsError as exc:
            problems.append(f"{where}: regdb refuses its environment: {exc}")
            continue
        if s.redis_url is None:
            problems.append(f"{where}: no Redis address (REDIS_URL or REDIS_SENTINELS)")
        if not s.secret_keys:
            problems.append(f"{where}: no REGDB_SECRET_KEYS (regdb refuses to start without it)")
        if s.host in ("127.0.0.1", "localhost", "::1"):
            problems.append(f"{where}: HOST {s.host} is unreachable from outside the pod")
        if s.hook_allow_loopback or s.probe_allow_link_local:
            problems.append(f"{where}: hooks to loopback or probes to link-local are allowed")
        if _role(c) == "api" and _port_number(c, s.port) is None:
            problems.append(f"{where}: PORT {s.port} is not a port of the container")
    return problems


def api_problems(docs: list[Doc]) -> list[str]:
    """Probes, the Service and the disruption budget around the API pods."""
    problems = []
    roles: dict[str, list[Doc]] = {}
    for w, c in _regdb_containers(docs):
        roles.setdefault(_role(c), []).append(w)
        if _role(c) != "api":
            continue
        name = w["metadata"]["name"]
        for probe, path in API_PATHS.items():
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or _port_number(c, get.get("port", "")) is None:
                problems.append(f"{name}: {probe} must GET {path} on a port of the container")
    for role, replicas in (("api", 2), ("worker", 1), ("scheduler", 2)):
        found = [w for w in roles.get(role, []) if w["kind"] == "Deployment"]
        if len(found) != 1 or found[0]["spec"].get("replicas", 1) < replicas:
            problems.append(f"one Deployment of `regdb {role}` with {replicas}+ replicas expected")
    if not roles.get("api"):
        return problems
    api = roles["api"][0]
    api_labels = _pod(api)["metadata"]["labels"]
    api_port = _pod(api)["spec"]["containers"][0]["ports"][0]
    service = _by_kind(docs, "Service").get("regdb")
    if service is None:
        problems.append("no Service `regdb`")
    else:
        selector = service["spec"]["selector"]
        if not _selects(selector, api_labels):
            problems.append("Service regdb does not select the API pods")
        for w in _workloads(docs):
            if w is not api and _selects(selector, _pod(w)["metadata"]["labels"]):
                problems.append(f"Service regdb also selects {w['metadata']['name']}")
        targets = {p["targetPort"] for p in service["spec"]["ports"]}
        if not targets <= {api_port["name"], api_port["containerPort"]}:
            problems.append(f"Service regdb targets {targets}, not the API's port")
    budgets = [
        p
        for p in _by_kind(docs, "PodDisruptionBudget").values()
        if _selects(p["spec"]["selector"]["matchLabels"], api_labels)
    ]
    if not budgets or budgets[0]["spec"].get("minAvailable", 0) >= api["spec"]["replicas"]:
        problems.append("no PodDisruptionBudget keeps some, but not all, API pods available")
    return problems


def _may_take_ingress(container: Doc, labels: Mapping[str, str], sources: list[Doc]) -> bool:
    """The API from anywhere; Redis from regdb's own pods only."""
    if _role(container) == "api":
        return True
    only_regdb = {"app.kubernetes.io/name": "regdb"}
    return (
        labels.get("app.kubernetes.io/name") == "redis"
        and bool(sources)
        and all(s.get("podSelector", {}).get("matchLabels") == only_regdb for s in sources)
    )


def ingress_problems(docs: list[Doc]) -> list[str]:
    """Ingress reaches the API's port, and Redis from regdb's pods; nothing else."""
    problems = []
    policies = list(_by_kind(docs, "NetworkPolicy").values())
    if not any(
        p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"]["policyTypes"]
        and not p["spec"].get("ingress")
        for p in policies
    ):
        problems.append("no default-deny ingress NetworkPolicy")
    for w in _workloads(docs):
        labels, name = _pod(w)["metadata"]["labels"], w["metadata"]["name"]
        container = _pod(w)["spec"]["containers"][0]
        for p in policies:
            if not _selects(p["spec"]["podSelector"].get("matchLabels", {}), labels):
                continue
            for rule in p["spec"].get("ingress", []):
                ports = [q.get("port") for q in rule.get("ports", [])] or [None]
                sources = rule.get("from", [])
                for port in ports:
                    if port is None or _port_number(container, port) is None:
                        problems.append(f"{p['metadata']['name']}: opens {name} on {port}")
                    elif not _may_take_ingress(container, labels, sources):
                        problems.append(f"{p['metadata']['name']}: lets ingress reach {name}")
    return problems


def redis_problems(docs: list[Doc]) -> list[str]:
    """An in-cluster Redis address names a Service reaching a Redis with README's settings."""
    problems = []
    for w, c in _regdb_containers(docs):
        env, _ = effective_env(c, docs)
        url = env.get("REDIS_URL", "")
        m = re.match(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", url)
        if m is None or "." in m.group(1):
            continue  # outside the overlay (a Redis you operate) or through Sentinel
        host, port = m.group(1), int(m.group(2) or 6379)
        service = _by_kind(docs, "Service").get(host)
        if service is None:
            problems.append(f"{w['metadata']['name']}: REDIS_URL names no Service {host!r}")
            continue
        redis = [
            r
            for r in _workloads(docs)
            if _selects(service["spec"]["selector"], _pod(r)["metadata"]["labels"])
        ]
        sport = next((p for p in service["spec"]["ports"] if p["port"] == port), None)
        if not redis or sport is None:
            problems.append(f"Service {host} does not reach a Redis on {port}")
            continue
        for r in redis:
            rc = _pod(r)["spec"]["containers"][0]
            args = " ".join(str(a) for a in rc.get("args", []))
            for setting in ("--appendonly yes", "--hash-max-listpack-value 8192"):
                if setting not in args:
                    problems.append(f"{r['metadata']['name']}: Redis runs without {setting}")
            if _port_number(rc, sport["targetPort"]) is None:
                problems.append(f"Service {host} targets no port of {r['metadata']['name']}")
            claims = {t["metadata"]["name"] for t in r["spec"].get("volumeClaimTemplates", [])}
            mounts = {v["name"]: v["mountPath"] for v in rc.get("volumeMounts", [])}
            data_dir = re.search(r"--dir (\S+)", args)
            if not data_dir or not any(mounts.get(n) == data_dir.group(1) for n in claims):
                problems.append(f"{r['metadata']['name']}: Redis's --dir is not on a volume claim")
    return list(dict.fromkeys(problems))  # each regdb container leads to the same Redis


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def all_problems(docs: list[Doc]) -> list[str]:
    """Every rule; regdb's own ones only on documents the schema accepts (they trust its types)."""
    problems = schema_problems(docs)
    if problems:
        return problems
    return (
        image_problems(docs, project_version())
        + pod_problems(docs)
        + regdb_env_problems(docs)
        + api_problems(docs)
        + ingress_problems(docs)
        + redis_problems(docs)
    )


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_document_is_valid_kubernetes(path: Path) -> None:
    docs = _load(path.read_text())
    assert docs, f"{path} holds no document"
    problems = schema_problems(docs) + image_problems(docs, project_version())
    assert not problems, "\n".join(problems)


def test_every_kustomization_is_rendered_here() -> None:
    found = {p.parent.name for p in REGDB_DEPLOY.rglob("kustomization.yaml")}
    assert found == {"base", *OVERLAYS}
    assert not list(DEPLOY.rglob("kustomization.yml"))
    for overlay in OVERLAYS:
        assert (REGDB_DEPLOY / overlay / "secrets.env.example").is_file()


def test_base_renders_to_valid_documents(rendered: dict[str, list[Doc]]) -> None:
    # regdb without a Redis is not deployable alone (no Secret): only the schema applies
    assert schema_problems(rendered["base"]) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_meets_every_rule(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    kinds = sorted({d["kind"] for d in docs})
    assert {"ConfigMap", "Deployment", "Secret", "Service", "NetworkPolicy"} <= set(kinds)
    problems = all_problems(docs)
    assert not problems, "\n".join(problems)


def test_in_cluster_redis_url_is_built_from_the_secret(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["redis-in-cluster"]
    assert any(d["kind"] == "StatefulSet" for d in docs)
    for _, c in _regdb_containers(docs):
        env, _ = effective_env(c, docs)
        password = env["REDIS_PASSWORD"]
        assert env["REDIS_URL"] == f"redis://:{password}@regdb-redis:6379/0"
        assert Settings.from_env(env).redis_url == env["REDIS_URL"]


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ("REDIS_URL=rediss://:pw@redis.example.internal:6379/0\n", "rediss://:pw@redis"),
        (
            "REDIS_SENTINELS=s0.example.internal:26379,s1.example.internal:26379\n"
            "REDIS_SENTINEL_MASTER=primary\nREDIS_PASSWORD=pw\n",
            "redis+sentinel://",
        ),
        ("REDIS_URL=redis+sentinel://s0.example.internal:26379/primary\n", "redis+sentinel://"),
    ],
    ids=["url", "sentinel-variables", "sentinel-url"],
)
def test_external_overlay_takes_each_redis_form(
    tmp_path: Path, secrets: str, expected: str
) -> None:
    keys = f"{generate_key()},{generate_key()}"
    docs = render("redis-external", tmp_path, secrets + f"REGDB_SECRET_KEYS={keys}\n")
    assert all_problems(docs) == []
    for _, c in _regdb_containers(docs):
        env, _ = effective_env(c, docs)
        assert env["REGDB_SECRET_KEYS"] == keys  # the same keys reach every process
        assert len(Settings.from_env(env).secret_keys) == 2
        url = Settings.from_env(env).redis_url
        assert url is not None and url.startswith(expected)


def test_external_overlay_refuses_two_redis_addresses(tmp_path: Path) -> None:
    docs = render(
        "redis-external",
        tmp_path,
        "REDIS_URL=redis://r.example.internal:6379/0\nREDIS_SENTINELS=s.example.internal:26379\n",
    )
    assert any("not both" in p for p in regdb_env_problems(docs))


def test_dockerfile_matches_the_manifests(rendered: dict[str, list[Doc]]) -> None:
    dockerfile = (REGDB_DEPLOY / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    port = re.search(r"^EXPOSE (\d+)$", dockerfile, re.M)
    assert user and port
    docs = rendered["redis-in-cluster"]
    for w, c in _regdb_containers(docs):
        sc = _pod(w)["spec"]["securityContext"]
        assert (str(sc["runAsUser"]), str(sc["runAsGroup"])) == user.groups()
        env, _ = effective_env(c, docs)
        assert env["PORT"] == port.group(1)
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in find["find"]["include"]:
        name = package.rstrip("*")
        assert f"COPY {name} ./{name}" in dockerfile, f"the image would lack {name}/"


# Every rule must be able to fail: each breakage below is one a person could make, and the
# checks must name it. (tests/test_deploy_manifests.py's own proof, run in every suite.)


def _container(docs: list[Doc], role: str) -> Doc:
    return next(c for _, c in _regdb_containers(docs) if _role(c) == role)


def _doc(docs: list[Doc], kind: str, name: str) -> Doc:
    return _by_kind(docs, kind)[name]


def _set_config(key: str, value: object) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        _doc(docs, "ConfigMap", "regdb-config")["data"][key] = value

    return change


BREAKAGES: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "replicas-not-a-number": (
        lambda d: _doc(d, "Deployment", "regdb-api")["spec"].update(replicas="two"),
        "spec.replicas",
    ),
    "misspelt-field": (
        lambda d: _container(d, "worker").update(resource={}),
        "Additional properties",
    ),
    "config-value-not-a-string": (_set_config("PORT", 8000), "data.PORT"),
    "readiness-on-healthz": (
        lambda d: _container(d, "api")["readinessProbe"]["httpGet"].update(path="/healthz"),
        "readinessProbe must GET /readyz",
    ),
    "no-liveness": (
        lambda d: _container(d, "api").pop("livenessProbe"),
        "livenessProbe must GET /healthz",
    ),
    "no-memory-limit": (
        lambda d: _container(d, "worker")["resources"]["limits"].pop("memory"),
        "resources.limits.memory",
    ),
    "writable-root": (
        lambda d: _container(d, "scheduler")["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "readOnlyRootFilesystem",
    ),
    "root-user": (
        lambda d: _pod(_doc(d, "Deployment", "regdb-api"))["spec"]["securityContext"].pop(
            "runAsNonRoot"
        ),
        "non-root",
    ),
    "latest-tag": (
        lambda d: _container(d, "api").update(image="regdb:latest"),
        "not latest",
    ),
    "untagged-redis": (
        lambda d: _pod(_doc(d, "StatefulSet", "regdb-redis"))["spec"]["containers"][0].update(
            image="redis"
        ),
        "needs a fixed tag",
    ),
    "service-selects-workers": (
        lambda d: _doc(d, "Service", "regdb")["spec"].update(
            selector={"app.kubernetes.io/name": "regdb"}
        ),
        "also selects regdb-worker",
    ),
    "service-selects-nothing": (
        lambda d: _doc(d, "Service", "regdb")["spec"]["selector"].update(
            {"app.kubernetes.io/component": "web"}
        ),
        "does not select the API pods",
    ),
    "one-scheduler": (
        lambda d: _doc(d, "Deployment", "regdb-scheduler")["spec"].update(replicas=1),
        "regdb scheduler",
    ),
    "no-pdb": (
        lambda d: d.remove(_doc(d, "PodDisruptionBudget", "regdb-api")),
        "PodDisruptionBudget",
    ),
    "unknown-variable": (_set_config("HEALTH_INTERVALS", "60"), "no variable HEALTH_INTERVALS"),
    "bad-value": (_set_config("PROBE_TOTAL_TIMEOUT", "ten"), "PROBE_TOTAL_TIMEOUT must be"),
    "loopback-host": (_set_config("HOST", "127.0.0.1"), "unreachable from outside"),
    "port-not-exposed": (_set_config("PORT", "9000"), "PORT 9000 is not a port"),
    "hooks-to-loopback": (_set_config("HOOK_ALLOW_LOOPBACK", "true"), "loopback"),
    "secret-missing": (
        lambda d: d.remove(next(x for x in d if x["kind"] == "Secret")),
        "cannot resolve",
    ),
    "secret-keys-missing": (
        lambda d: next(x for x in d if x["kind"] == "Secret")["data"].pop("REGDB_SECRET_KEYS"),
        ".REGDB_SECRET_KEYS for REGDB_SECRET_KEYS",
    ),
    "secret-keys-placeholder": (
        lambda d: next(x for x in d if x["kind"] == "Secret")["data"].update(
            REGDB_SECRET_KEYS=base64.b64encode(KEY_PLACEHOLDER.encode()).decode()
        ),
        "REGDB_SECRET_KEYS: key 1 is not base64",
    ),
    "redis-service-renamed": (
        lambda d: _doc(d, "Service", "regdb-redis")["metadata"].update(name="redis"),
        "names no Service 'regdb-redis'",
    ),
    "redis-without-aof": (
        lambda d: _pod(_doc(d, "StatefulSet", "regdb-redis"))["spec"]["containers"][0][
            "args"
        ].remove("--appendonly"),
        "without --appendonly yes",
    ),
    "redis-on-ephemeral-disk": (
        lambda d: _doc(d, "StatefulSet", "regdb-redis")["spec"].pop("volumeClaimTemplates"),
        "not on a volume claim",
    ),
    "no-default-deny": (
        lambda d: d.remove(_doc(d, "NetworkPolicy", "regdb-default-deny-ingress")),
        "default-deny",
    ),
    "redis-open-to-all": (
        lambda d: _doc(d, "NetworkPolicy", "regdb-redis-ingress")["spec"]["ingress"][0].pop("from"),
        "lets ingress reach regdb-redis",
    ),
    "api-open-on-another-port": (
        lambda d: _doc(d, "NetworkPolicy", "regdb-api-ingress")["spec"]["ingress"][0].update(
            ports=[{"port": 9090, "protocol": "TCP"}]
        ),
        "opens regdb-api on 9090",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_breakage_is_reported(rendered: dict[str, list[Doc]], breakage: str) -> None:
    docs = copy.deepcopy(rendered["redis-in-cluster"])
    assert all_problems(docs) == []
    change, expected = BREAKAGES[breakage]
    change(docs)
    problems = all_problems(docs)
    assert any(expected in p for p in problems), problems
