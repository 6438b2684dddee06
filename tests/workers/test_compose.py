"""docker-compose.yml cannot run here (no docker engine): check it against the code instead."""

from pathlib import Path

import typer.main
import yaml

from labeler.cli import app
from labeler.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LABELER_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "sae-labeler:latest"}


def _resolve(args: list[str]):
    """The (sub)command that `labeler ARGS` runs; typer's groups expose `.commands` by name."""
    command = typer.main.get_command(app)
    for word in args:
        if word.startswith("-") or not hasattr(command, "commands"):
            break
        assert word in command.commands, f"labeler has no command {word!r}"
        command = command.commands[word]
    return command


def test_expected_services_exist():
    assert {"redis", "postgres", "migrate", "gpu-worker", "llm-worker", "web"} <= set(SERVICES)
    assert set(LABELER_SERVICES) == {"migrate", "gpu-worker", "llm-worker", "web"}


def test_every_command_and_option_exists_in_the_cli():
    for name, service in LABELER_SERVICES.items():
        args = service["command"]
        command = _resolve(args)
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for word in args:
            if word.startswith("--"):
                assert word in known, f"{name}: option {word} unknown to `labeler {' '.join(args)}`"


def test_environment_names_real_settings():
    fields = {f"LABELER_{n.upper()}" for n in Settings.model_fields}
    for name, service in LABELER_SERVICES.items():
        env = service["environment"]
        for key in env:
            if key.startswith("LABELER_"):
                assert key in fields, f"{name}: {key} is not a setting"
        assert env["LABELER_BROKER_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["LABELER_DATABASE_URL"]


def test_workers_listen_on_their_queues_and_gpu_is_reserved():
    assert SERVICES["gpu-worker"]["command"][-1] == "gpu"
    assert SERVICES["llm-worker"]["command"][2] == "llm"
    devices = SERVICES["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert SERVICES["gpu-worker"]["environment"]["LABELER_DEVICE"] == "cuda"


def test_workers_wait_for_the_migration():
    for name in ("gpu-worker", "llm-worker", "web"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
