"""The deploy files, checked without a Docker engine: docker-compose.yml against the Compose
Specification's JSON Schema and our own rules, and the Dockerfile for what its image holds, read with
Docker's own Dockerfile parser and .dockerignore rules.

tests/compose-spec.json is the Compose Specification's schema, vendored unchanged from
github.com/compose-spec/compose-spec (schema/compose-spec.json, commit 170098ba07d9, June 2026; Apache-2.0).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import dockerfile
import jsonschema
import pytest
import yaml
from docker.utils.build import exclude_paths

from api.main import create_app
from api.security import served_routes
from services.settings import PROJECT_ROOT, Settings
from services.site import REQUIRED, ROSTER, load_site

COMPOSE_SCHEMA = Path(__file__).parent / "compose-spec.json"
OUR_SERVICES = ("migrate", "carepath-api", "carepath-worker")
# What an operator exports before `docker compose up` (the top of docker-compose.yml).
OPERATOR_ENVIRONMENT = {"CAREPATH_SECRET_KEY": "s" * 48, "CAREPATH_PAYLOAD_KEYS": "k1:" + "A" * 43 + "="}


def compose_file() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def interpolated(value: str, environment: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`, as `docker compose` resolves them."""
    def resolve(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if environment.get(name):
            return environment[name]
        if operator == ":?":
            raise KeyError(f"{name}: {argument}")
        return argument if operator == ":-" else ""
    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", resolve, value)


def environment_of(service: dict) -> dict[str, str]:
    return {name: interpolated(str(value), OPERATOR_ENVIRONMENT) for name, value in service["environment"].items()}


def compose_validator() -> jsonschema.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema names draft-07 by a URI jsonschema does not recognise (https, no fragment): say it here.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_follows_the_compose_specification():
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in compose_validator().iter_errors(compose_file())]
    assert errors == []


def test_the_schema_catches_a_mistake():
    broken = compose_file()
    broken["services"]["carepath-api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["carepath-worker"]["healthcheck"]["intervals"] = "10s"
    assert len(list(compose_validator().iter_errors(broken))) == 2


def test_every_image_is_ours_or_pinned():
    for name, service in compose_file()["services"].items():
        if "build" in service:
            assert service["build"] == ".", f"{name} builds from something other than our Dockerfile"
        else:
            image, _, tag = service["image"].rpartition(":")
            assert image and tag and tag != "latest", f"{name}: pin the image's version, not {service['image']}"


def test_our_services_get_every_setting_a_container_needs():
    """Each starts with exactly the environment compose gives it (production refuses weak or missing
    secrets), and overrides every default that points at this machine: in a container, 127.0.0.1 is
    the container itself, and a SQLite file would be lost with it."""
    local_defaults = {name for name, field in Settings.model_fields.items()
                      if re.search(r"127\.0\.0\.1|sqlite", str(field.default))}
    # Only the worker serves metrics; the API's are on its own port, at /metrics.
    worker_only = {"METRICS_HOST"}
    assert local_defaults >= worker_only
    for name in OUR_SERVICES:
        environment = environment_of(compose_file()["services"][name])
        settings = Settings(_env_file=None, **{key.removeprefix("CAREPATH_"): value for key, value in environment.items()
                                               if key.startswith("CAREPATH_")})
        assert settings.ENVIRONMENT == "production"
        needed = local_defaults - (set() if name == "carepath-worker" else worker_only)
        assert {f"CAREPATH_{setting}" for setting in needed} <= set(environment), name


def test_the_secrets_come_from_the_operator_not_the_file():
    for name in OUR_SERVICES:
        environment = compose_file()["services"][name]["environment"]
        for secret in OPERATOR_ENVIRONMENT:
            assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", environment[secret]), f"{name}: {secret}"
        with pytest.raises(KeyError, match="CAREPATH_SECRET_KEY"):
            interpolated(environment["CAREPATH_SECRET_KEY"], {})


def test_migrations_run_once_before_the_api_and_the_workers():
    services = compose_file()["services"]
    assert services["migrate"]["command"] == ["carepath", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("carepath-api", "carepath-worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["carepath-worker"]["deploy"]["replicas"] >= 2


def test_healthchecks_call_what_the_services_serve():
    services = compose_file()["services"]
    settings = Settings(ENVIRONMENT="test")
    paths = {path for path, _ in served_routes(create_app(settings))}
    [api_url] = re.findall(r"http://127\.0\.0\.1:8000(/[\w/]+)", " ".join(services["carepath-api"]["healthcheck"]["test"]))
    assert api_url == "/health/ready" and api_url in paths
    worker = services["carepath-worker"]
    [worker_port] = re.findall(r"http://127\.0\.0\.1:(\d+)/metrics", " ".join(worker["healthcheck"]["test"]))
    assert worker_port == environment_of(worker)["CAREPATH_METRICS_PORT"]


# --- What the image holds ---------------------------------------------------------------------

def stages() -> list[list[dockerfile.Command]]:
    """The Dockerfile's instructions, stage by stage, as Docker's own parser reads them."""
    found: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(PROJECT_ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            found.append([])
        found[-1].append(command)
    return found


def copies(stage: list[dockerfile.Command]) -> list[tuple[list[str], str]]:
    return [(list(command.value[:-1]), command.value[-1]) for command in stage if command.cmd == "COPY"]


def build_context(destination: Path) -> Path:
    """The files `docker build .` sends, after .dockerignore, copied to `destination`."""
    patterns = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    for relative in exclude_paths(str(PROJECT_ROOT), patterns):
        source = PROJECT_ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    return build_context(tmp_path_factory.mktemp("context"))


def test_the_build_stage_copies_every_package_of_ours():
    build, _ = stages()
    copied = {source for sources, _ in copies(build) for source in sources}
    ours = {path.parent.name for path in PROJECT_ROOT.glob("*/__init__.py")}
    assert ours | {"pyproject.toml", "README.md"} <= copied


def test_the_installed_packages_hold_every_file_of_their_folders(context: Path, tmp_path: Path):
    """What the code reads beside itself (form templates, the preview template, the migrations) is in
    the wheel the image installs: built here by setuptools from the same context, as `pip wheel` does."""
    build, _ = stages()
    staged = tmp_path / "src"
    for sources, target in copies(build):
        for source in sources:
            destination = staged / target / (source if target.endswith("/") else "")
            if (context / source).is_dir():
                shutil.copytree(context / source, destination)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, destination)
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "-d", str(tmp_path / "installed")], cwd=staged, check=True, capture_output=True)
    installed = {path.relative_to(tmp_path / "installed") for path in (tmp_path / "installed").rglob("*") if path.is_file()}
    ours = [path.parent.name for path in PROJECT_ROOT.glob("*/__init__.py")]
    missing = sorted(str(relative) for package in ours for path in (PROJECT_ROOT / package).rglob("*")
                     if path.is_file() and "__pycache__" not in path.parts
                     and (relative := path.relative_to(PROJECT_ROOT)) not in installed)
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"


def test_the_image_holds_the_site_folder_the_services_read(context: Path):
    """CAREPATH_PATHWAYS_DIR points at the copied pathways folder, and that folder, as the build context
    has it, is a complete site: instruments, crisis lexicon, roster, and pathways that load against them."""
    _, runtime = stages()
    environment = dict(zip(*[iter(next(command.value for command in runtime if command.cmd == "ENV"))] * 2))
    [workdir] = [command.value[0] for command in runtime if command.cmd == "WORKDIR"]
    [target] = [target for sources, target in copies(runtime) if sources == ["pathways"]]
    assert PurePosixPath(workdir, target) == PurePosixPath(environment["CAREPATH_PATHWAYS_DIR"])
    folder = context / "pathways"
    for part in (*REQUIRED, ROSTER):
        assert (folder / part).exists(), f"{part} is not in the image"
    site = load_site(folder)
    pathways = sorted(folder.glob("*.yaml"))
    assert pathways, "no pathway in the image's pathways folder"
    for path in pathways:
        site.load_pathway(path)


def test_the_commands_run_modules_the_image_has():
    _, runtime = stages()
    [command] = [command.value for command in runtime if command.cmd == "CMD"]
    assert list(command) == ["python", "-m", "api"]
    worker = compose_file()["services"]["carepath-worker"]["command"]
    for module in (command[2], worker[2]):
        path = PROJECT_ROOT.joinpath(*module.split("."))
        assert (path / "__main__.py").exists() or path.with_suffix(".py").exists(), module
