"""k8s/ and Containerfile: valid for the APIs they target, and in step with the binary.

Every YAML file under k8s/ is parsed; every kustomization (base, kafka, dapr,
postgres, both overlays...) is rendered with the real kustomize, at the version
scripts/setup pins and builds into ~/.cache/todo-backend; and every rendered
object is validated offline against ../shared/schemas:

  - core kinds: the Kubernetes v1.32.2 "standalone-strict" JSON schemas
    (unknown fields are errors, as with `kubectl apply --validate=strict`);
  - Strimzi, Dapr and CloudNativePG custom resources: the openAPIV3Schema of
    their CRDs, made strict the way the API server prunes (shared/schemas/
    README.md), with metadata checked as a strict ObjectMeta;
  - kustomization.yaml files: SchemaStore's kustomization schema.

Mutation tests prove that a wrong field fails. Cross-checks tie the manifests
to the binary (`--help` variables, probe routes, shutdown deadline), to each
other (names, selectors, ports, secrets) and to DESIGN.md (topics, Dapr
names); the Containerfile is checked against scripts/setup and the binary's
shared libraries.

Debian packages only: python3-yaml, python3-jsonschema (scripts/setup).
"""

import copy
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

try:
    import jsonschema
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    pytest.fail("python3-yaml and python3-jsonschema are needed: run scripts/setup",
                pytrace=False)

from conftest import BIN, require_binary, run_binary

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CONTAINERFILE = REPO / "Containerfile"
CONTAINERIGNORE = REPO / ".containerignore"
SETUP = REPO / "scripts" / "setup"
SCHEMAS = Path(os.environ.get("TODO_SCHEMAS_DIR", REPO.parent / "shared" / "schemas"))
K8S_SCHEMAS = SCHEMAS / "k8s-v1.32.2-standalone-strict"
CRD_FILES = (
    "strimzi-0.48.0/040-Crd-kafka.yaml",
    "strimzi-0.48.0/043-Crd-kafkatopic.yaml",
    "strimzi-0.48.0/044-Crd-kafkauser.yaml",
    "strimzi-0.48.0/045-Crd-kafkanodepool.yaml",
    "dapr-1.18.3/components.yaml",
    "dapr-1.18.3/resiliency.yaml",
    "dapr-1.18.3/subscription.yaml",
    "cnpg-1.30.0/postgresql.cnpg.io_clusters.yaml",
)
KAFKA_VERSIONS = SCHEMAS / "strimzi-0.48.0" / "kafka-versions.yaml"
KUSTOMIZATION_SCHEMA = SCHEMAS / "kustomization-schemastore" / "kustomization.json"

# Every directory `kustomize build` must render (Components are rendered as
# part of the overlays that use them).
BUILDS = ("base", "kafka", "dapr", "dapr/subscriptions", "postgres",
          "overlays/dev", "overlays/prod")
OVERLAYS = ("overlays/dev", "overlays/prod")
# Manifests that are deliberately in no kustomization.
TEMPLATES = {"base/secret.template.yaml"}

NAMESPACE = "todo"
APP_ID = "todo-backend"
CONTAINER = "app"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
KAFKA_CLUSTER = "todo-kafka"
CNPG_CLUSTER = "todo-db"
APP_SECRET = "todo-backend-secrets"
# Kafka 4 removed the protocol versions before 2.1 (KIP-896).
MIN_SARAMA_VERSION = (2, 1, 0)

# DESIGN.md sections 5-7: the pub/sub component and topics the events issue
# will use. They MUST equal the `todo-backend --help` defaults of
# DAPR_PUBSUB_NAME, KAFKA_TOPIC_TASKS, KAFKA_TOPIC_REMINDERS and
# KAFKA_TOPIC_DLQ once those variables exist (test_dapr_component compares
# them as soon as --help lists them), and the partition counts those of
# scripts/kafka.
PUBSUB_NAME = "kafka-pubsub"
CONSUMER_GROUP = "todo-backend"
TOPIC_TASKS, TOPIC_REMINDERS, TOPIC_DLQ = "tasks", "reminders", "tasks-dlq"
TOPICS = {TOPIC_TASKS: 6, TOPIC_REMINDERS: 3, TOPIC_DLQ: 1}
HELP_DEFAULTS = {"DAPR_PUBSUB_NAME": PUBSUB_NAME, "KAFKA_TOPIC_TASKS": TOPIC_TASKS,
                 "KAFKA_TOPIC_REMINDERS": TOPIC_REMINDERS, "KAFKA_TOPIC_DLQ": TOPIC_DLQ}
EVENT_ROUTES = {TOPIC_TASKS: "/api/events/tasks", TOPIC_REMINDERS: "/api/events/reminders"}

# Containerfile: what the runtime stage installs, exactly (the issue's list).
RUNTIME_PACKAGES = {"libuv1", "libpq5", "librdkafka1", "libjansson4", "libssl3",
                    "ca-certificates"}
# -dev packages scripts/setup installs for the tests only, never linked into
# the shipped binary: clang's sanitizer runtime for the ASan and fuzz builds.
TEST_ONLY_DEV_PACKAGES = {"libclang-rt-14-dev"}
# Provided by debian:bookworm-slim itself.
BASE_IMAGE_PACKAGES = {"libc6"}
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|lsan|tsan|clang_rt)")

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CLUSTER_SCOPED = {"Namespace"}


# --------------------------------------------------------------------------
# YAML files
# --------------------------------------------------------------------------

def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def rel(path):
    return str(Path(path).relative_to(K8S))


def yaml_files():
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def kustomization_files():
    return [p for p in yaml_files() if p.name in ("kustomization.yaml", "kustomization.yml")]


def kustomization_refs():
    """(resource files, patch files, directories) the kustomizations name."""
    resources, patches, dirs = set(), set(), set()
    for kfile in kustomization_files():
        k = load_docs(kfile)[0]
        for entry in k.get("resources", []) + k.get("components", []):
            target = (kfile.parent / entry).resolve()
            (dirs if target.is_dir() else resources).add(target)
        for p in k.get("patches", []) + k.get("patchesStrategicMerge", []):
            path = p.get("path") if isinstance(p, dict) else p
            if path:
                patches.add((kfile.parent / path).resolve())
    return resources, patches, dirs


def manifest_files():
    """Files holding whole objects (not kustomizations, not patches)."""
    _, patches, _ = kustomization_refs()
    return [p for p in yaml_files()
            if p.name not in ("kustomization.yaml", "kustomization.yml")
            and p.resolve() not in patches]


# --------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------

def require_schemas():
    if not (SCHEMAS / "README.md").is_file():
        pytest.fail(f"schemas not found in {SCHEMAS} (the shared/ folder beside the "
                    f"repository, or set TODO_SCHEMAS_DIR)", pytrace=False)


def strict_crd_schema(s):
    """A CRD's OpenAPI v3 structural schema -> JSON Schema that rejects what the
    API server would prune (shared/schemas/README.md)."""
    if s.get("nullable") and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s:
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in s and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        s["additionalProperties"] = False
    subs = list(s.get("properties", {}).values())
    subs += [s[k] for k in ("items", "additionalProperties", "not") if isinstance(s.get(k), dict)]
    subs += s.get("anyOf", []) + s.get("allOf", []) + s.get("oneOf", [])
    for sub in subs:
        strict_crd_schema(sub)
    return s


@functools.lru_cache(maxsize=None)
def object_meta_schema():
    with open(K8S_SCHEMAS / "configmap-v1.json", encoding="utf-8") as f:
        return json.load(f)["properties"]["metadata"]


@functools.lru_cache(maxsize=None)
def crd_schemas():
    """{(apiVersion, kind): JSON Schema} for every served CRD version."""
    require_schemas()
    out = {}
    for name in CRD_FILES:
        crd = load_docs(SCHEMAS / name)[0]
        assert crd["kind"] == "CustomResourceDefinition", name
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if not v.get("served"):
                continue
            schema = strict_crd_schema(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
            # The CRD types metadata only as "object": use the strict ObjectMeta.
            schema["properties"]["metadata"] = object_meta_schema()
            schema.setdefault("required", [])
            for key in ("apiVersion", "kind", "metadata"):
                if key not in schema["required"]:
                    schema["required"].append(key)
            out[(f"{group}/{v['name']}", kind)] = schema
    return out


def core_schema_file(api_version, kind):
    group, _, version = api_version.rpartition("/")
    part = f"-{group.split('.')[0]}" if group else ""
    return K8S_SCHEMAS / f"{kind.lower()}{part}-{version}.json"


@functools.lru_cache(maxsize=None)
def validator_for(api_version, kind):
    require_schemas()
    crd = crd_schemas().get((api_version, kind))
    if crd is not None:
        return jsonschema.Draft7Validator(crd)
    path = core_schema_file(api_version, kind)
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return jsonschema.Draft7Validator(json.load(f))


@functools.lru_cache(maxsize=None)
def kustomization_validator():
    require_schemas()
    with open(KUSTOMIZATION_SCHEMA, encoding="utf-8") as f:
        return jsonschema.Draft7Validator(json.load(f))


def schema_errors(doc):
    """Every way `doc` breaks its API's schema, as readable strings."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return ["not a Kubernetes object (apiVersion and kind are required)"]
    v = validator_for(doc["apiVersion"], doc["kind"])
    if v is None:
        return [f"no schema for {doc['apiVersion']} {doc['kind']} in {SCHEMAS}"]
    errs = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in v.iter_errors(doc)]
    errs += metadata_errors(doc)
    return errs


def metadata_errors(doc):
    meta = doc.get("metadata") or {}
    errs = []
    name = meta.get("name", "")
    if not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
        errs.append(f"metadata/name: {name!r} is not a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errs.append(f"metadata/labels/{key}: {value!r} is not a label value")
    return errs


def kustomization_errors(doc):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in kustomization_validator().iter_errors(doc)]


def describe(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# --------------------------------------------------------------------------
# kustomize
# --------------------------------------------------------------------------

def pinned_kustomize_version():
    m = re.search(r"^KUSTOMIZE_VERSION=(v\d+\.\d+\.\d+)\s*$", SETUP.read_text(), re.M)
    assert m, "scripts/setup must pin KUSTOMIZE_VERSION=vX.Y.Z"
    return m.group(1)


def kustomize_path():
    if os.environ.get("KUSTOMIZE"):
        return Path(os.environ["KUSTOMIZE"])
    cache = os.environ.get("KUSTOMIZE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "todo-backend")
    return Path(cache) / f"kustomize-{pinned_kustomize_version()}" / "kustomize"


@pytest.fixture(scope="module")
def kustomize():
    path = kustomize_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"kustomize not found at {path}: scripts/setup builds it "
                    f"(or set KUSTOMIZE to a kustomize {pinned_kustomize_version()})",
                    pytrace=False)
    return str(path)


def kustomize_build(kustomize, directory):
    cp = subprocess.run([kustomize, "build", str(directory)], capture_output=True,
                        text=True, timeout=120)
    if cp.returncode != 0:
        pytest.fail(f"kustomize build {directory} failed:\n{cp.stderr}", pytrace=False)
    return [d for d in yaml.safe_load_all(cp.stdout) if d is not None]


@pytest.fixture(scope="module")
def rendered(kustomize):
    return {b: kustomize_build(kustomize, K8S / b) for b in BUILDS}


class Objects:
    """One rendered kustomization, indexed by kind and name."""

    def __init__(self, docs):
        self.docs = docs

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name=None):
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request, rendered):
    return Objects(rendered[request.param])


# --------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------

HELP_LINE = re.compile(r"^  ([A-Z][A-Z0-9_]*)\s+--[a-z0-9-]+\s+default (.*)$")


@pytest.fixture(scope="module")
def help_vars():
    """{VARIABLE: default} from `todo-backend --help`."""
    cp = run_binary(["--help"])
    assert cp.returncode == 0, cp.stderr
    found = {}
    for line in cp.stdout.splitlines():
        m = HELP_LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    # The parser must keep up with the help format.
    assert {"PORT", "HOST", "SHUTDOWN_TIMEOUT_MS", "DATABASE_URL"} <= found.keys(), cp.stdout
    return found


# --------------------------------------------------------------------------
# Accessors for the service's Deployment
# --------------------------------------------------------------------------

def deployment(objs):
    return objs.one("Deployment", APP_ID)


def pod_spec(objs):
    return deployment(objs)["spec"]["template"]["spec"]


def app_container(objs):
    cs = [c for c in pod_spec(objs)["containers"] if c["name"] == CONTAINER]
    assert len(cs) == 1, f"the Deployment needs one container named {CONTAINER}"
    return cs[0]


def pod_annotations(objs):
    return deployment(objs)["spec"]["template"]["metadata"].get("annotations") or {}


def config_data(objs):
    """Every variable the ConfigMaps referenced by envFrom give the container."""
    out = {}
    for src in app_container(objs).get("envFrom") or []:
        assert "configMapRef" in src, f"envFrom only from ConfigMaps: {src}"
        out.update(objs.one("ConfigMap", src["configMapRef"]["name"]).get("data") or {})
    return out


def effective_env(objs):
    """{name: entry} for every variable the container gets, ConfigMaps first."""
    env = {k: {"name": k, "value": v} for k, v in config_data(objs).items()}
    for e in app_container(objs).get("env") or []:
        env[e["name"]] = e
    return env


def setting(objs, help_vars, name):
    """The value the pod runs with: the manifest's, else the binary's default."""
    entry = effective_env(objs).get(name)
    if entry is not None:
        assert "value" in entry, f"{name} must be a literal value"
        return entry["value"]
    return help_vars[name]


def container_port(objs, port):
    """A probe's or Service's port (number or name) -> containerPort."""
    if isinstance(port, int):
        return port
    ports = {p.get("name"): p["containerPort"] for p in app_container(objs).get("ports") or []}
    assert port in ports, f"named port {port!r} is not a port of the container"
    return ports[port]


def prestop_seconds(container):
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    cmd = (pre.get("exec") or {}).get("command") or []
    words = " ".join(cmd).split()
    assert words and Path(words[-2] if len(words) > 1 else "").name == "sleep", \
        f"preStop must be a sleep: {pre}"
    return int(words[-1])


def matches(selector, labels):
    assert not selector.get("matchExpressions"), "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def component(objs):
    return objs.one("Component", PUBSUB_NAME)


def component_meta(objs):
    return {m["name"]: m for m in component(objs)["spec"]["metadata"]}


def kafka(objs):
    return objs.one("Kafka", KAFKA_CLUSTER)


def node_pools(objs):
    return [p for p in objs.all("KafkaNodePool")
            if p["metadata"]["labels"].get("strimzi.io/cluster") == KAFKA_CLUSTER]


def brokers(objs):
    return sum(p["spec"]["replicas"] for p in node_pools(objs) if "broker" in p["spec"]["roles"])


def version_tuple(text):
    return tuple(int(x) for x in str(text).split("."))


# ==========================================================================
# Schemas and files
# ==========================================================================

def test_schemas_are_the_checked_copies():
    """The schema files this test reads are the ones SHA256SUMS vouches for."""
    require_schemas()
    sums = {}
    for line in (SCHEMAS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[os.path.normpath(name.lstrip("*"))] = digest
    used = [*CRD_FILES, "strimzi-0.48.0/kafka-versions.yaml",
            "kustomization-schemastore/kustomization.json"]
    used += [str(p.relative_to(SCHEMAS)) for p in K8S_SCHEMAS.glob("*.json")]
    for name in used:
        digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        assert sums.get(os.path.normpath(name)) == digest, f"{name} differs from SHA256SUMS"


def test_kustomize_is_the_pinned_version(kustomize):
    cp = subprocess.run([kustomize, "version"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == pinned_kustomize_version(), cp.stdout


def test_layout():
    for d in BUILDS:
        assert (K8S / d / "kustomization.yaml").is_file(), d
    assert (K8S / "README.md").is_file()
    for t in TEMPLATES:
        assert (K8S / t).is_file(), t


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_yaml_parses(path):
    docs = load_docs(path)
    assert docs, f"{rel(path)} holds no document"


@pytest.mark.parametrize("path", kustomization_files(), ids=rel)
def test_kustomization_matches_schema(path):
    docs = load_docs(path)
    assert len(docs) == 1
    k = docs[0]
    assert kustomization_errors(k) == []
    assert (k.get("apiVersion"), k.get("kind")) in {
        ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
        ("kustomize.config.k8s.io/v1alpha1", "Component")}
    # Everything is local: the machines that render this have no network
    # beyond package registries.
    for entry in k.get("resources", []) + k.get("components", []):
        assert (path.parent / entry).exists(), f"{rel(path)}: {entry} does not exist"
    for p in k.get("patches", []):
        assert "path" in p, f"{rel(path)}: keep patches in files"
        assert (path.parent / p["path"]).is_file(), f"{rel(path)}: {p['path']} does not exist"


@pytest.mark.parametrize("path", manifest_files(), ids=rel)
def test_manifest_file_matches_schema(path):
    for doc in load_docs(path):
        assert schema_errors(doc) == [], f"{rel(path)} {describe(doc)}"


def test_every_manifest_is_used():
    """No manifest file is left out of every kustomization by mistake."""
    resources, _, _ = kustomization_refs()
    orphans = [rel(p) for p in manifest_files()
               if p.resolve() not in resources and rel(p) not in TEMPLATES]
    assert orphans == []


@pytest.mark.parametrize("build", BUILDS)
def test_rendered_objects_match_schemas(rendered, build):
    docs = rendered[build]
    assert docs, f"kustomize build {build} rendered nothing"
    problems = {describe(d): schema_errors(d) for d in docs}
    assert {k: v for k, v in problems.items() if v} == {}
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"


@pytest.mark.parametrize("build", BUILDS)
def test_rendered_objects_are_in_the_namespace(rendered, build):
    for d in rendered[build]:
        if d["kind"] in CLUSTER_SCOPED:
            assert d["metadata"]["name"] == NAMESPACE
        else:
            assert d["metadata"].get("namespace") == NAMESPACE, describe(d)


def test_overlays_include_the_namespace(overlay):
    assert overlay.one("Namespace", NAMESPACE)


# ==========================================================================
# A wrong field fails
# ==========================================================================

def _set(path, value):
    def mutate(doc):
        *parents, last = path
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
    return mutate


def _delete(path):
    def mutate(doc):
        *parents, last = path
        node = doc
        for key in parents:
            node = node[key]
        del node[last]
    return mutate


_C0 = ("spec", "template", "spec", "containers", 0)
MUTATIONS = {
    # name: (build, kind, object name, mutation, text the error must contain)
    "deployment-unknown-probe-field": (
        "overlays/prod", "Deployment", APP_ID,
        _set(_C0 + ("livenessProbe", "httpGett"), {"path": "/healthz"}), "httpGett"),
    "deployment-grace-as-string": (
        "overlays/prod", "Deployment", APP_ID,
        _set(("spec", "template", "spec", "terminationGracePeriodSeconds"), "30"), "'30'"),
    "deployment-security-context-typo": (
        "overlays/dev", "Deployment", APP_ID,
        _set(_C0 + ("securityContext", "readOnlyRootFileSystem"), True), "readOnlyRootFileSystem"),
    "service-port-as-string": (
        "overlays/dev", "Service", APP_ID,
        _set(("spec", "ports", 0, "port"), "80"), "'80'"),
    "hpa-unknown-field": (
        "overlays/prod", "HorizontalPodAutoscaler", APP_ID,
        _set(("spec", "minReplica"), 3), "minReplica"),
    "networkpolicy-unknown-field": (
        "overlays/prod", "NetworkPolicy", APP_ID,
        _set(("spec", "ingres"), []), "ingres"),
    "pdb-unknown-field": (
        "overlays/prod", "PodDisruptionBudget", APP_ID,
        _set(("spec", "maxUnavailble"), 1), "maxUnavailble"),
    "configmap-metadata-typo": (
        "overlays/dev", "ConfigMap", "todo-backend-config",
        _set(("metadata", "lables"), {"a": "b"}), "lables"),
    "kafka-unknown-field": (
        "overlays/prod", "Kafka", KAFKA_CLUSTER,
        _set(("spec", "kafka", "listners"), []), "listners"),
    "kafka-listener-port-as-string": (
        "overlays/prod", "Kafka", KAFKA_CLUSTER,
        _set(("spec", "kafka", "listeners", 0, "port"), "9092"), "'9092'"),
    "kafka-metadata-typo": (
        "overlays/prod", "Kafka", KAFKA_CLUSTER,
        _set(("metadata", "annotation"), {}), "annotation"),
    "nodepool-bad-storage-type": (
        "overlays/dev", "KafkaNodePool", "dual-role",
        _set(("spec", "storage", "volumes", 0, "type"), "ephemral"), "ephemral"),
    "nodepool-missing-roles": (
        "overlays/prod", "KafkaNodePool", "brokers", _delete(("spec", "roles")), "roles"),
    "topic-partitions-as-string": (
        "overlays/prod", "KafkaTopic", TOPIC_TASKS,
        _set(("spec", "partitions"), "6"), "'6'"),
    "user-bad-authentication": (
        "overlays/prod", "KafkaUser", APP_ID,
        _set(("spec", "authentication", "type"), "scram-sha-256"), "scram-sha-256"),
    "dapr-component-typo": (
        "overlays/prod", "Component", PUBSUB_NAME,
        _set(("spec", "metadata", 0, "valu"), "x"), "valu"),
    "dapr-resiliency-retries-as-string": (
        "overlays/prod", "Resiliency", APP_ID,
        _set(("spec", "policies", "retries", "eventRetry", "maxRetries"), "8"), "'8'"),
    "dapr-subscription-without-routes": (
        "dapr/subscriptions", "Subscription", "todo-backend-tasks",
        _delete(("spec", "routes")), "routes"),
    "cnpg-instances-as-string": (
        "overlays/prod", "Cluster", CNPG_CLUSTER,
        _set(("spec", "instances"), "3"), "'3'"),
    "cnpg-unknown-field": (
        "overlays/dev", "Cluster", CNPG_CLUSTER,
        _set(("spec", "bootstrap", "initdb", "databse"), "todo"), "databse"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_validation_rejects_a_wrong_field(rendered, case):
    build, kind, name, mutate, needle = MUTATIONS[case]
    doc = copy.deepcopy(Objects(rendered[build]).one(kind, name))
    assert schema_errors(doc) == [], "the unmutated object must be valid"
    mutate(doc)
    errs = schema_errors(doc)
    assert errs, f"{case}: the mutated {kind} still validates"
    assert any(needle in e for e in errs), errs


def test_validation_rejects_a_wrong_kustomization_field():
    k = load_docs(K8S / "overlays" / "prod" / "kustomization.yaml")[0]
    assert kustomization_errors(k) == []
    bad = dict(k, resource=k["resources"])
    assert any("resource" in e for e in kustomization_errors(bad))


def test_validation_rejects_an_unknown_kind():
    assert schema_errors({"apiVersion": "v1", "kind": "Pods", "metadata": {"name": "x"}})


@pytest.mark.parametrize("file,old,new,needle", [
    ("base/deployment.yaml", "terminationGracePeriodSeconds: 30",
     "terminationGracePeriodSecond: 30", "terminationGracePeriodSecond"),
    ("kafka/topics.yaml", "partitions: 6", "partitions: six", "'six'"),
    ("dapr/component.yaml", "type: pubsub.kafka", "typ: pubsub.kafka", "typ"),
    ("postgres/cluster.yaml", "database: todo", "databse: todo", "databse"),
])
def test_a_broken_file_fails_after_rendering(kustomize, tmp_path, file, old, new, needle):
    """End to end: a typo in a source file survives kustomize and is caught."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    target = tree / file
    text = target.read_text()
    assert text.count(old) == 1, f"{file}: {old!r} must occur once"
    target.write_text(text.replace(old, new))
    errs = [e for d in kustomize_build(kustomize, tree / "overlays" / "dev")
            for e in schema_errors(d)]
    assert any(needle in e for e in errs), errs


# ==========================================================================
# The Deployment and the binary
# ==========================================================================

def test_env_vars_are_ones_the_binary_reads(overlay, help_vars):
    unknown = sorted(set(effective_env(overlay)) - set(help_vars))
    assert unknown == [], f"not in `todo-backend --help`: {unknown}"


def test_configmap_values_are_accepted_by_the_binary(rendered, help_vars, start_server):
    """The base ConfigMap's settings start the real binary, which then answers
    the probe paths the Deployment uses."""
    objs = Objects(rendered["base"])
    env = dict(config_data(objs))
    env.update(PORT=0, HOST="127.0.0.1")     # a free loopback port for the test
    server = start_server(**env)
    c = app_container(objs)
    live = server.get(c["livenessProbe"]["httpGet"]["path"])
    assert live.status == 200, live
    ready = server.get(c["readinessProbe"]["httpGet"]["path"])
    assert ready.status in (200, 503), ready
    assert "status" in json.loads(ready.body)


def test_secrets_come_from_secret_refs(overlay):
    env = effective_env(overlay)
    template = load_docs(K8S / "base" / "secret.template.yaml")[0]
    assert template["metadata"]["name"] == APP_SECRET
    template_keys = set(template.get("stringData") or {}) | set(template.get("data") or {})
    # The template holds no secret.
    assert all(v in ("", None) for v in (template.get("stringData") or {}).values())
    assert not template.get("data")
    # DATABASE_URL: the Secret CloudNativePG generates for the Cluster.
    ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert overlay.one("Cluster", CNPG_CLUSTER)
    assert (ref["name"], ref["key"]) == (f"{CNPG_CLUSTER}-app", "uri")
    for var in ("AUTH_JWT_SECRET", "APP_API_TOKEN"):
        assert "value" not in env[var], f"{var} must not be a literal"
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == APP_SECRET and ref["key"] in template_keys, ref
    # No Secret (with or without values) is rendered: apply never overwrites one.
    assert overlay.all("Secret") == []


def test_probes_match_the_service(overlay, help_vars):
    c = app_container(overlay)
    port = int(setting(overlay, help_vars, "PORT"))
    assert c["ports"][0]["containerPort"] == port
    probes = {k: c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert all(probes.values()), f"all three probes are needed: {probes}"
    paths = {k: p["httpGet"]["path"] for k, p in probes.items()}
    assert paths == {"startupProbe": LIVENESS_PATH, "livenessProbe": LIVENESS_PATH,
                     "readinessProbe": READINESS_PATH}
    for k, p in probes.items():
        assert container_port(overlay, p["httpGet"]["port"]) == port, k
    svc = overlay.one("Service", APP_ID)
    assert all(container_port(overlay, p["targetPort"]) == port for p in svc["spec"]["ports"])
    ann = pod_annotations(overlay)
    assert int(ann["dapr.io/app-port"]) == port
    assert ann["dapr.io/app-health-check-path"] == LIVENESS_PATH


def test_shutdown_budget(overlay, help_vars):
    """SIGTERM comes after preStop; the drain deadline must fit in the rest."""
    spec = pod_spec(overlay)
    grace = spec["terminationGracePeriodSeconds"]
    drain_s = int(setting(overlay, help_vars, "SHUTDOWN_TIMEOUT_MS")) / 1000
    sleep_s = prestop_seconds(app_container(overlay))
    assert 1 <= sleep_s <= 15, "a short preStop sleep so endpoints go first"
    assert grace > drain_s
    assert grace > sleep_s + drain_s, (grace, sleep_s, drain_s)
    dapr_s = int(pod_annotations(overlay)["dapr.io/graceful-shutdown-seconds"])
    assert dapr_s <= grace


def test_security_context(overlay):
    pod = pod_spec(overlay)
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert pod.get("hostNetwork") in (None, False) and pod.get("hostPID") in (None, False)
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc.get("privileged") in (None, False), c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert not sc["capabilities"].get("add"), c["name"]
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        assert uid and uid > 0, c["name"]
        res = c["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"], c["name"]
        assert res["limits"]["memory"], c["name"]
    sa = overlay.one("ServiceAccount", pod["serviceAccountName"])
    assert sa["automountServiceAccountToken"] is False


def test_dapr_annotations(overlay):
    ann = pod_annotations(overlay)
    assert ann["dapr.io/enabled"] == "true"
    assert ann["dapr.io/app-id"] == APP_ID
    assert ann["dapr.io/app-protocol"] == "http"
    assert ann["dapr.io/enable-app-health-check"] == "true"
    # Dapr reads the key "token" of the Secret it names; the service's
    # APP_API_TOKEN must be the same value.
    assert ann["dapr.io/app-token-secret"] == APP_SECRET
    ref = effective_env(overlay)["APP_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (APP_SECRET, "token")
    # Annotation values are strings (a bare true or 8080 is rejected by the API).
    assert all(isinstance(v, str) for v in ann.values())


def test_autoscaling_and_disruption(overlay):
    dep = deployment(overlay)
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert matches(dep["spec"]["selector"], labels)
    hpa = overlay.one("HorizontalPodAutoscaler", APP_ID)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": APP_ID}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for m in hpa["spec"]["metrics"]:
        if m["type"] == "ContainerResource":
            assert m["containerResource"]["container"] == CONTAINER
    pdb = overlay.one("PodDisruptionBudget", APP_ID)
    assert matches(pdb["spec"]["selector"], labels)
    # With one replica, minAvailable would block every node drain.
    assert "maxUnavailable" in pdb["spec"]
    svc = overlay.one("Service", APP_ID)
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())


def test_database_connections_fit(overlay, help_vars):
    """Every pod at the HPA maximum (plus the rollout surge) can open its pool,
    and the one connection that holds the outbox relay lock."""
    hpa = overlay.one("HorizontalPodAutoscaler", APP_ID)
    surge = deployment(overlay)["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    pool = int(setting(overlay, help_vars, "DB_POOL_SIZE")) + 1
    params = overlay.one("Cluster", CNPG_CLUSTER)["spec"]["postgresql"]["parameters"]
    reserved = 10    # CloudNativePG's own and superuser connections
    assert (hpa["spec"]["maxReplicas"] + surge) * pool + reserved <= int(params["max_connections"])


def test_network_policy(overlay, help_vars):
    np = overlay.one("NetworkPolicy", APP_ID)
    labels = deployment(overlay)["spec"]["template"]["metadata"]["labels"]
    assert matches(np["spec"]["podSelector"], labels)
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    port = int(setting(overlay, help_vars, "PORT"))
    ingress_ports = [container_port(overlay, p["port"])
                     for rule in np["spec"]["ingress"] for p in rule.get("ports", [])]
    assert port in ingress_ports

    def egress_to(label, value, port, namespace=None):
        """Some egress rule lets `port` reach pods labelled label=value in the
        pod's own namespace (or in the namespace named)."""
        for rule in np["spec"]["egress"]:
            ports = {p["port"] for p in rule.get("ports") or []}
            for peer in rule.get("to") or []:
                pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
                ns = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(
                    "kubernetes.io/metadata.name")
                if pods.get(label) == value and ns == namespace and port in ports:
                    return True
        return False

    assert egress_to("cnpg.io/cluster", CNPG_CLUSTER, 5432)
    plain = next(li for li in kafka(overlay)["spec"]["kafka"]["listeners"] if li["name"] == "plain")
    assert egress_to("strimzi.io/cluster", KAFKA_CLUSTER, plain["port"])
    assert egress_to("k8s-app", "kube-dns", 53, namespace="kube-system")


# ==========================================================================
# Dapr
# ==========================================================================

def test_dapr_component(overlay, help_vars):
    comp = component(overlay)
    meta = component_meta(overlay)
    assert comp["spec"]["type"] == "pubsub.kafka"
    assert comp["spec"]["version"] == "v1"
    assert APP_ID in comp["scopes"]
    assert meta["consumerGroup"]["value"] == CONSUMER_GROUP
    assert version_tuple(meta["version"]["value"]) >= MIN_SARAMA_VERSION
    # The brokers are the Strimzi cluster's bootstrap Service, plain listener.
    plain = next(li for li in kafka(overlay)["spec"]["kafka"]["listeners"] if li["name"] == "plain")
    assert meta["brokers"]["value"] == f"{KAFKA_CLUSTER}-kafka-bootstrap:{plain['port']}"
    assert meta["disableTls"]["value"] == ("false" if plain["tls"] else "true")
    # Every metadata value is a string (Dapr reads them as strings).
    assert all(isinstance(m["value"], str) for m in meta.values() if "value" in m)
    # The names the binary will default to, once it lists them.
    for var, expected in HELP_DEFAULTS.items():
        if var in help_vars:
            assert help_vars[var] == expected, var


def test_service_kafka_client(overlay, help_vars):
    """The outbox producer reaches the same cluster as Dapr, on declared
    topics, authenticated exactly when the listener demands it."""
    env = effective_env(overlay)
    plain = next(li for li in kafka(overlay)["spec"]["kafka"]["listeners"] if li["name"] == "plain")
    assert setting(overlay, help_vars, "KAFKA_BROKERS") == \
        f"{KAFKA_CLUSTER}-kafka-bootstrap:{plain['port']}"
    declared = {t["metadata"]["name"] for t in overlay.all("KafkaTopic")}
    for var in ("KAFKA_TOPIC_TASKS", "KAFKA_TOPIC_REMINDERS", "KAFKA_TOPIC_DLQ"):
        assert setting(overlay, help_vars, var) in declared, var
    # One deliverer of consumed events: the sidecar where there is one.
    sidecar = pod_annotations(overlay).get("dapr.io/enabled") == "true"
    assert setting(overlay, help_vars, "EVENTS_CONSUMER") == ("dapr" if sidecar else "kafka")
    assert setting(overlay, help_vars, "DAPR_PUBSUB_NAME") == component(overlay)["metadata"]["name"]
    auth = (plain.get("authentication") or {}).get("type")
    protocol = setting(overlay, help_vars, "KAFKA_SECURITY_PROTOCOL")
    if auth is None:
        assert protocol == ("ssl" if plain["tls"] else "plaintext")
        assert "KAFKA_SASL_PASSWORD" not in env
        return
    assert auth == "scram-sha-512"
    assert protocol == ("sasl_ssl" if plain["tls"] else "sasl_plaintext")
    assert setting(overlay, help_vars, "KAFKA_SASL_MECHANISM") == "SCRAM-SHA-512"
    user = overlay.one("KafkaUser", setting(overlay, help_vars, "KAFKA_SASL_USERNAME"))
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    writable = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"]
                if a["resource"]["type"] == "topic" and "Write" in a["operations"]}
    assert setting(overlay, help_vars, "KAFKA_TOPIC_TASKS") in writable
    # The password: the Secret the User Operator makes for that KafkaUser.
    ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (user["metadata"]["name"], "password")


def test_dapr_resiliency(overlay):
    res = overlay.one("Resiliency", APP_ID)
    assert APP_ID in res["scopes"]
    policies = res["spec"]["policies"]
    target = res["spec"]["targets"]["components"][PUBSUB_NAME]["inbound"]
    assert target["retry"] in policies["retries"]
    assert target["timeout"] in policies["timeouts"]
    retry = policies["retries"][target["retry"]]
    # Bounded, so that an event that keeps failing reaches the dead-letter topic.
    assert retry["maxRetries"] >= 1


def test_declarative_subscriptions(rendered):
    subs = Objects(rendered["dapr/subscriptions"]).all("Subscription")
    by_topic = {s["spec"]["topic"]: s for s in subs}
    assert set(by_topic) == set(EVENT_ROUTES)
    for topic, s in by_topic.items():
        assert s["apiVersion"] == "dapr.io/v2alpha1"
        assert s["spec"]["pubsubname"] == PUBSUB_NAME
        assert s["spec"]["routes"] == {"default": EVENT_ROUTES[topic]}
        assert s["scopes"] == [APP_ID]
    assert by_topic[TOPIC_TASKS]["spec"]["deadLetterTopic"] == TOPIC_DLQ
    assert "deadLetterTopic" not in by_topic[TOPIC_REMINDERS]["spec"]


def test_subscriptions_are_opt_in(rendered):
    for o in OVERLAYS:
        assert Objects(rendered[o]).all("Subscription") == []


# ==========================================================================
# Kafka (Strimzi 0.48)
# ==========================================================================

def test_kafka_cluster(overlay):
    k = kafka(overlay)
    assert k["apiVersion"] == "kafka.strimzi.io/v1beta2"
    ann = k["metadata"]["annotations"]
    assert ann["strimzi.io/kraft"] == "enabled"
    assert ann["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in k["spec"]
    version = k["spec"]["kafka"]["version"]
    supported = {v["version"] for v in load_docs(KAFKA_VERSIONS)[0] if v.get("supported")}
    assert version in supported, f"Strimzi 0.48 supports {sorted(supported)}"
    assert version.startswith("4.1."), "the project tests against Kafka 4.1.x"
    pools = node_pools(overlay)
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for p in pools:
        kraft = [v for v in p["spec"]["storage"]["volumes"] if v.get("kraftMetadata")]
        assert len(kraft) == 1, p["metadata"]["name"]
    eo = k["spec"]["entityOperator"]
    assert "topicOperator" in eo and "userOperator" in eo
    config = k["spec"]["kafka"]["config"]
    n = brokers(overlay)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "default.replication.factor"):
        assert 1 <= config[key] <= n, key
    assert config["min.insync.replicas"] <= config["default.replication.factor"]


def test_kafka_topics(overlay):
    topics = {t["metadata"]["name"]: t for t in overlay.all("KafkaTopic")}
    assert {name: t["spec"]["partitions"] for name, t in topics.items()} == TOPICS
    n = brokers(overlay)
    for name, t in topics.items():
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER, name
        assert "topicName" not in t["spec"], "the Kubernetes name is the topic name"
        replicas = t["spec"]["replicas"]
        config = t["spec"]["config"]
        assert 1 <= replicas <= n, name
        assert int(config["retention.ms"]) > 0, name
        isr = int(config["min.insync.replicas"])
        # One replica may be down without blocking writes (unless there is one).
        assert isr == 1 if replicas == 1 else 1 < isr < replicas, name


# ==========================================================================
# The overlays' differences
# ==========================================================================

def test_dev_overlay(rendered):
    objs = Objects(rendered["overlays/dev"])
    pools = node_pools(objs)
    assert len(pools) == 1
    pool = pools[0]["spec"]
    assert pool["replicas"] == 1 and set(pool["roles"]) == {"controller", "broker"}
    assert [v["type"] for v in pool["storage"]["volumes"]] == ["ephemeral"]
    assert objs.one("HorizontalPodAutoscaler", APP_ID)["spec"]["minReplicas"] == 1
    assert objs.one("Cluster", CNPG_CLUSTER)["spec"]["instances"] == 1
    assert component_meta(objs)["authType"]["value"] == "none"
    assert objs.all("KafkaUser") == []


def test_prod_overlay(rendered):
    objs = Objects(rendered["overlays/prod"])
    pools = {p["metadata"]["name"]: p["spec"] for p in node_pools(objs)}
    by_role = {tuple(sorted(p["roles"])): p for p in pools.values()}
    assert set(by_role) == {("controller",), ("broker",)}, "separate controllers and brokers"
    assert by_role[("controller",)]["replicas"] == 3
    assert by_role[("broker",)]["replicas"] == 3
    for p in pools.values():
        assert all(v["type"] == "persistent-claim" and v.get("deleteClaim") is False
                   for v in p["storage"]["volumes"])
    config = kafka(objs)["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["transaction.state.log.min.isr"] == 2
    for t in objs.all("KafkaTopic"):
        assert t["spec"]["replicas"] == 3
        assert int(t["spec"]["config"]["min.insync.replicas"]) == 2
    assert objs.one("HorizontalPodAutoscaler", APP_ID)["spec"]["minReplicas"] >= 3
    assert objs.one("Cluster", CNPG_CLUSTER)["spec"]["instances"] == 3


def test_prod_kafka_uses_scram(rendered):
    objs = Objects(rendered["overlays/prod"])
    k = kafka(objs)["spec"]["kafka"]
    assert k["authorization"]["type"] == "simple"
    for li in k["listeners"]:
        assert li["authentication"]["type"] == "scram-sha-512", li["name"]
    users = objs.all("KafkaUser")
    assert len(users) == 1
    user = users[0]
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    acls = user["spec"]["authorization"]["acls"]
    topics = {a["resource"]["name"] for a in acls if a["resource"]["type"] == "topic"}
    groups = {a["resource"]["name"] for a in acls if a["resource"]["type"] == "group"}
    assert topics == set(TOPICS) and groups == {CONSUMER_GROUP}
    # Dapr logs in as that user with the Secret the User Operator makes.
    meta = component_meta(objs)
    assert meta["authType"]["value"] == "password"
    assert meta["saslMechanism"]["value"] == "SHA-512"
    assert meta["saslUsername"]["value"] == user["metadata"]["name"]
    assert meta["saslPassword"]["secretKeyRef"] == {"name": user["metadata"]["name"],
                                                    "key": "password"}
    # That Secret must not collide with the service's own.
    assert user["metadata"]["name"] != APP_SECRET


# ==========================================================================
# Containerfile
# ==========================================================================

def containerfile_stages():
    """[(base image, stage name, [(INSTRUCTION, arguments)])] of the Containerfile."""
    logical, buf = [], ""
    for line in CONTAINERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue            # comments, also inside continuations
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    assert not buf.strip(), "the Containerfile ends inside a continuation"
    stages = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", args.strip(), re.I)
            assert m, line
            stages.append((m.group(1), m.group(2), []))
        else:
            assert stages, f"{instr} before FROM"
            stages[-1][2].append((instr, args.strip()))
    return stages


def apt_installs(instructions):
    pkgs = set()
    for instr, args in instructions:
        if instr != "RUN":
            continue
        for part in re.split(r"&&|;", args):
            words = part.split()
            if "apt-get" in words and "install" in words:
                pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


def setup_packages():
    """The unconditional package list of scripts/setup."""
    m = re.search(r"^packages=\((.*?)^\)", SETUP.read_text(), re.M | re.S)
    assert m, "scripts/setup: packages=( ... ) not found"
    words = []
    for line in m.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def test_containerfile_stages():
    stages = containerfile_stages()
    assert len(stages) == 2
    (b_image, b_name, _), (r_image, _, _) = stages
    assert b_image == r_image == "debian:bookworm-slim"
    assert b_name == "build"
    runtime = stages[-1][2]
    copies = [a for i, a in runtime if i == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), \
        "the runtime stage takes only the built binary"
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0])[0].startswith("/"), "exec-form ENTRYPOINT"


def test_containerfile_build_stage_matches_setup():
    build = containerfile_stages()[0][2]
    installed = apt_installs(build)
    setup = setup_packages()
    lib_dev = {p for p in setup if p.endswith("-dev")} - TEST_ONLY_DEV_PACKAGES
    assert {p for p in installed if p.endswith("-dev")} == lib_dev
    # The rest of what meson.build needs.
    assert {"meson", "ninja-build", "pkg-config", "node-llhttp", "python3"} <= installed
    assert {"meson", "ninja-build", "pkg-config", "node-llhttp"} <= setup
    # Every build input is copied, and exists.
    for instr, args in build:
        if instr == "COPY":
            *sources, _dest = args.split()
            for s in sources:
                assert (REPO / s).exists(), f"COPY {s}: no such path"
    copied = {s.rstrip("/") for i, a in build if i == "COPY" for s in a.split()[:-1]}
    assert {"meson.build", "src", "subprojects", "tests/unit"} <= copied


def test_containerfile_runtime_stage(rendered):
    stages = containerfile_stages()
    runtime = stages[-1][2]
    assert apt_installs(runtime) == RUNTIME_PACKAGES
    instrs = [i for s in stages for i, _ in s[2]]
    assert "HEALTHCHECK" not in instrs, "Kubernetes probes are the health checks"
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage needs a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric, non-root USER (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # The pods run as the image's user.
    for o in OVERLAYS:
        objs = Objects(rendered[o])
        assert pod_spec(objs)["securityContext"]["runAsUser"] == int(uid), o
        assert app_container(objs)["securityContext"].get("runAsUser", int(uid)) == int(uid), o
    ports = [a for i, a in runtime if i == "EXPOSE"]
    assert ports == [config_data(Objects(rendered["base"]))["PORT"]]


def test_containerignore_keeps_build_trees_out():
    lines = {line.strip() for line in CONTAINERIGNORE.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {".git", ".dev", "build*/"} <= lines


def _package_of(path):
    cp = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if cp.returncode != 0:
        real = os.path.realpath(path)
        cp = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
    assert cp.returncode == 0, f"dpkg -S {path}: {cp.stderr}"
    return cp.stdout.split(":", 1)[0].strip()


def test_runtime_packages_cover_the_binary():
    """Each shared library the built binary needs comes from a runtime package
    (resolved with ldd and dpkg -S on this Debian 12 machine)."""
    require_binary()
    if not all(shutil.which(t) for t in ("ldd", "readelf", "dpkg")):
        pytest.fail("ldd, readelf (binutils) and dpkg are needed: a Debian 12 machine "
                    "set up by scripts/setup")
    cp = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    needed = {}
    for line in cp.stdout.splitlines():
        m = re.match(r"^\s*(\S+)\s+=>\s+(\S+)", line)
        if m and not SANITIZER_LIBS.match(m.group(1)):
            needed[m.group(1)] = m.group(2)
    # Direct dependencies only: transitive ones come with the packages.
    dyn = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True, timeout=30)
    assert dyn.returncode == 0, dyn.stderr
    direct = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn.stdout))
    assert direct, dyn.stdout
    missing = {}
    for soname in direct:
        if SANITIZER_LIBS.match(soname):
            continue
        assert soname in needed, f"{soname} not resolved by ldd"
        pkg = _package_of(needed[soname])
        if pkg not in RUNTIME_PACKAGES | BASE_IMAGE_PACKAGES:
            missing[soname] = pkg
    assert missing == {}, "add these packages to the Containerfile's runtime stage"
