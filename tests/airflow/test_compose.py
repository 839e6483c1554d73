"""docker-compose.yml and the Dockerfile agree with the project.

No Docker engine is needed: the compose file is read as YAML and checked
against pyproject.toml, the repo's files and the DAGs' names (pool,
connection, config variable).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-worker", "airflow-triggerer", "airflow-init"}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "mailpit"}
CONFIG_IN_CONTAINER = "/opt/airflow/newsmon/newsmon.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def _airflow_requirement() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    for spec in project["optional-dependencies"]["airflow"]:
        requirement = Requirement(spec)
        if requirement.name == "apache-airflow":
            return requirement
    raise AssertionError("pyproject.toml: no apache-airflow in the airflow extra")


def _dockerfile_args() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text("utf-8")
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))


def test_all_services_are_there(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES


def test_airflow_version_matches_pyproject(services: dict[str, Any]) -> None:
    requirement = _airflow_requirement()
    dockerfile = "\n".join(line for line in (ROOT / "Dockerfile").read_text("utf-8").splitlines()
                           if not line.lstrip().startswith("#"))
    args = _dockerfile_args()
    version = args["AIRFLOW_VERSION"]
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$",
                     dockerfile, flags=re.M)
    # The image's Airflow is what pyproject allows; a pin must be exactly it.
    assert requirement.specifier.contains(Version(version)), (version, str(requirement))
    pinned = [s.version for s in requirement.specifier if s.operator == "=="]
    assert pinned in ([], [version])
    # pip may not swap the image's Airflow for another while installing newsmon.
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in dockerfile
    python = args["PYTHON_VERSION"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "requires-python"]
    assert Version(python) in Requirement(f"python{requires}").specifier
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"]["context"] == "."
        assert service["build"]["args"] == {"AIRFLOW_VERSION": version,
                                            "PYTHON_VERSION": python}, name
        assert service["image"].endswith(f":{version}"), name
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in service["environment"], name


def test_celery_executor_with_redis_broker_and_postgres(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.fullmatch(r"redis://[^@]*@?redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
        assert re.fullmatch(r"db\+postgresql://[^@]+@postgres(:5432)?/\w+",
                            env["AIRFLOW__CELERY__RESULT_BACKEND"])
        assert re.fullmatch(r"postgresql\+psycopg2://[^@]+@postgres(:5432)?/\w+",
                            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-apiserver:8080/execution/")
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["airflow-worker"]["command"] == "celery worker"


def test_mounted_host_paths_exist(services: dict[str, Any]) -> None:
    mounted = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repo"
                mounted.add(source)
    assert {"./dags", "./deploy"} <= mounted


def test_host_files_are_mounted_by_their_folder(services: dict[str, Any]) -> None:
    # A file bind mount stays on the inode it was given: an editor that saves
    # by writing a new file and renaming it (vim, sed -i, git checkout) left
    # the tasks reading the old deploy/newsmon.yaml until a restart, though
    # the file says "edit it here; the next task run reads it".
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).is_dir(), f"{name}: {source} is a file mount"


def host_path(service: dict[str, Any], inside: str) -> Path:
    """The repo file a container path of ``service`` is, through its bind mounts."""
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith(".") and (inside == target or inside.startswith(f"{target}/")):
            return ROOT / source / inside[len(target):].lstrip("/")
    raise AssertionError(f"{inside} is not on a bind mount")


def test_newsmon_config_is_mounted_and_valid(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["environment"]["NEWSMON_CONFIG"] == CONFIG_IN_CONTAINER, name
        assert host_path(service, CONFIG_IN_CONTAINER) == ROOT / "deploy" / "newsmon.yaml"
        assert "./deploy:/opt/airflow/newsmon:ro" in service["volumes"], name
        assert "newsmon-data:/opt/airflow/data" in service["volumes"], name
    settings = load_settings(ROOT / "deploy" / "newsmon.yaml")
    # The database lives in the data volume, not in the container's own layer.
    assert settings.database.is_relative_to("/opt/airflow/data")
    assert settings.feeds and settings.alerts
    assert settings.smtp is None  # mail goes through the smtp_default connection


def test_init_creates_pool_connection_and_admin(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "airflow db migrate" in script
    assert re.search(r"airflow users create\b", script)
    assert re.search(r'airflow pools set newsmon_duckdb 1 "', script)
    assert re.search(r"airflow connections add smtp_default\s*\\?\s*--conn-type smtp\s*"
                     r"--conn-host mailpit\s*--conn-port 1025\b", script)
    assert '"disable_ssl": true, "disable_tls": true' in script
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"), name


def test_pool_and_connection_names_match_the_dags() -> None:
    dags = "\n".join(p.read_text("utf-8") for p in sorted((ROOT / "dags").glob("*.py")))
    assert 'DUCKDB_POOL = "newsmon_duckdb"' in dags
    support = (ROOT / "pipeline" / "airflow_support.py").read_text("utf-8")
    assert 'SMTP_CONN_ID = "smtp_default"' in support
    assert 'CONFIG_ENV = "NEWSMON_CONFIG"' in support


def test_mailpit_serves_smtp_and_its_web_ui(services: dict[str, Any]) -> None:
    mailpit = services["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert "8025:8025" in mailpit["ports"]
    assert 1025 in mailpit["expose"]
    assert "8080:8080" in services["airflow-apiserver"]["ports"]


# -- what the deployment files name ----------------------------------------------------------

DEPLOYMENT_FILES = ("docker-compose.yml", "docker-compose.lake.yml", "Dockerfile",
                    ".dockerignore", "Makefile", ".ci/run", "deploy/newsmon.yaml",
                    "deploy/newsmon-lake.yaml", "dags/news_monitor.py",
                    "dags/news_maintenance.py")
# A path in the repo, as the files' comments and commands write one.
REPO_PATH = re.compile(r"(?<![\w/.-])(?:\./)?((?:docs|tests|pipeline|deploy|dags|seeds|benchmarks"
                       r"|\.ci)/[\w./-]*\w)")


def test_every_repo_file_the_deployment_files_name_exists() -> None:
    # docker-compose.yml once sent the operator to docs/airflow.md for the
    # secrets, a file that never existed.
    named = {}
    for name in DEPLOYMENT_FILES:
        for found in REPO_PATH.findall((ROOT / name).read_text("utf-8")):
            named.setdefault(found, name)
    assert "deploy/newsmon.yaml" in named and "pipeline/run.py" in named
    missing = {path: where for path, where in named.items() if not (ROOT / path).exists()}
    assert missing == {}, f"named but not in the repo: {missing}"


def test_every_readme_section_the_deployment_files_name_exists() -> None:
    headings = [line.lstrip("#").strip() for line in
                (ROOT / "README.md").read_text("utf-8").splitlines() if line.startswith("#")]
    named = [found for name in DEPLOYMENT_FILES
             for found in re.findall(r'README, "([^"]+)"', (ROOT / name).read_text("utf-8"))]
    assert named, "no README section named: the pattern is out of date"
    for section in named:
        assert any(h == section or h.startswith(f"{section}:") for h in headings), section


# -- the image builds from what the context holds ----------------------------------------------

def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    # Go's filepath.Match, as Docker uses it: '*' and '?' stop at '/', '**'
    # spans folders ('**/x' matches x at any depth, the root included).
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token))
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's ``patterns`` leave ``path`` (from the context's
    root) out: a pattern matching the path or a folder above it excludes it.
    No ``!`` exceptions are used here."""
    assert not any(p.startswith("!") for p in patterns), "exceptions: extend _ignored"
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(_docker_pattern(pattern).fullmatch(prefix)
               for pattern in patterns for prefix in prefixes)


def test_the_ignore_rule_reads_dockerignore_as_docker_does() -> None:
    patterns = ["tests", "**/__pycache__", "*.duckdb", "data"]
    assert _ignored("tests/unit/test_x.py", patterns)
    assert _ignored("pipeline/__pycache__/x.pyc", patterns)
    assert _ignored("news.duckdb", patterns)
    assert not _ignored("pipeline/data/topics.yaml", patterns)  # only the root's data/
    assert not _ignored("pipeline/x.duckdb", patterns)


def test_every_copy_source_is_in_the_build_context() -> None:
    patterns = _dockerignore()
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) (\S+)$",
                        (ROOT / "Dockerfile").read_text("utf-8"), flags=re.M)
    sources = [src for found, _ in copies for src in found.split()]
    assert {"pyproject.toml", "README.md", "pipeline"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f".dockerignore leaves out {source}"
    # And every file the package installs (pyproject's package-data) with it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    for package, globs in project["tool"]["setuptools"]["package-data"].items():
        for pattern in globs:
            found = list((ROOT / package).glob(pattern))
            assert found, f"{package}/{pattern}: no file"
            for path in found:
                assert not _ignored(path.relative_to(ROOT).as_posix(), patterns), path


def test_the_image_installs_extras_pyproject_defines() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    (extras,) = re.findall(r'"/opt/newsmon\[([\w,]+)\]"', dockerfile)
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]
    assert set(extras.split(",")) <= set(defined), extras
    # The COPY destination is the folder pip installs.
    assert re.search(r"^COPY .* /opt/newsmon/$", dockerfile, flags=re.M)
    assert re.search(r"^COPY .*pipeline /opt/newsmon/pipeline$", dockerfile, flags=re.M)


# -- Airflow's settings, as the installed Airflow names them -----------------------------------

# Settings of providers the image has and the test environment does not (the
# celery and fab providers), checked against their documentation:
# airflow.apache.org/docs/apache-airflow-providers-celery/stable/configurations-ref.html
PROVIDER_SETTINGS = {("celery", "broker_url"), ("celery", "result_backend")}


def test_every_airflow_setting_exists_in_the_installed_airflow() -> None:
    pytest.importorskip("airflow", reason="needs the airflow extra")
    import airflow

    templates = Path(airflow.__file__).parent / "config_templates"
    options = {(section, key) for section, spec in
               yaml.safe_load((templates / "config.yml").read_text("utf-8")).items()
               for key in spec["options"]}
    text = "\n".join((ROOT / name).read_text("utf-8") for name in
                     ("docker-compose.yml", "docker-compose.lake.yml", "Makefile"))
    named = {(s.lower(), k.lower()) for s, k in re.findall(r"AIRFLOW__([A-Z_]+?)__([A-Z_]+)",
                                                           text)}
    assert ("core", "executor") in named and ("celery", "broker_url") in named
    unknown = named - options - PROVIDER_SETTINGS
    assert unknown == set(), f"not settings of Airflow {airflow.__version__}: {unknown}"


# -- secrets ---------------------------------------------------------------------------------

def _readme_secret_command(variable: str) -> str:
    readme = (ROOT / "README.md").read_text("utf-8")
    (command,) = re.findall(rf"^{variable}=\.\.\.\s+# (python -c .+)$", readme, flags=re.M)
    return command


def test_the_jwt_secrets_are_long_enough_for_airflows_hs512(services: dict[str, Any]) -> None:
    # Airflow signs the tokens of the API server and of every task's execution
    # API calls with HS512 from [api_auth] jwt_secret; PyJWT warns
    # (InsecureKeyLengthWarning) on each token signed or checked with a key
    # under 64 bytes. The trial default and the README's way to make one were
    # 34 and 43 bytes.
    pytest.importorskip("airflow", reason="needs the airflow extra")
    import asyncio
    import shlex
    import subprocess
    import sys
    import warnings

    from airflow.api_fastapi.auth.tokens import JWTGenerator, JWTValidator

    env = services["airflow-apiserver"]["environment"]
    (default,) = re.fullmatch(r"\$\{AIRFLOW_JWT_SECRET:-(.+)\}",
                              env["AIRFLOW__API_AUTH__JWT_SECRET"]).groups()
    argv = shlex.split(_readme_secret_command("AIRFLOW_JWT_SECRET"))
    assert argv[0] == "python"
    made = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()
    for secret in (default, made):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            generator = JWTGenerator(secret_key=secret, valid_for=60, audience="newsmon")
            assert generator.algorithm == "HS512"
            token = generator.generate({"sub": "newsmon"})
            validator = JWTValidator(secret_key=secret, audience="newsmon")
            assert asyncio.run(validator.avalidated_claims(token))["sub"] == "newsmon"
