"""compose.yaml's `observability` profile: Prometheus and Grafana on the shipped files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.observability import DASHBOARD, PROMETHEUS_DIR, ROOT, run_promtool

GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS_CONFIGS = ("prometheus.yml", "prometheus.make-run.yml")
# ${NAME:-default} in compose.yaml, read with its default as `docker compose` would
_DEFAULTED = re.compile(r"\$\{\w+:-([^}]*)\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def _in_container(mounts: dict[str, Path], path: str) -> Path:
    """The host file behind a path inside the container."""
    for target, source in mounts.items():
        if path == target or path.startswith(target + "/"):
            return source / path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{path} is not under any bind mount: {sorted(mounts)}")


def test_the_profile_runs_prometheus_and_grafana_and_nothing_else() -> None:
    services = _compose()["services"]
    profiled = {name for name, s in services.items() if "observability" in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    for name, service in services.items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name} mounts missing {source} at {target}"


def test_prometheus_starts_with_a_shipped_config_that_loads_the_alert_rules() -> None:
    prometheus = _compose()["services"]["prometheus"]
    mounts = _mounts(prometheus)
    assert mounts["/etc/prometheus/interlock"] == PROMETHEUS_DIR
    flags = dict(arg.split("=", 1) for arg in prometheus["command"])
    config = _in_container(mounts, _DEFAULTED.sub(r"\1", flags["--config.file"]))
    assert config == PROMETHEUS_DIR / "prometheus.yml"
    # the other config is chosen by INTERLOCK_PROMETHEUS_CONFIG, beside the default one
    assert "${INTERLOCK_PROMETHEUS_CONFIG:-" in flags["--config.file"]
    for name in PROMETHEUS_CONFIGS:
        loaded = yaml.safe_load((PROMETHEUS_DIR / name).read_text())
        assert loaded["rule_files"] == ["alerts.yaml"], name
        assert all(job["job_name"].startswith("interlock") for job in loaded["scrape_configs"])


@pytest.mark.parametrize("name", PROMETHEUS_CONFIGS)
def test_promtool_accepts_the_prometheus_config_and_its_rules(name: str) -> None:
    result = run_promtool("check", "config", PROMETHEUS_DIR / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yaml" in result.stdout


def test_the_stack_config_scrapes_router_executors_and_resumer_on_their_telemetry_port() -> None:
    compose = _compose()
    port = int(compose["x-interlock"]["environment"]["INTERLOCK_TELEMETRY_PORT"])
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, target_port = target.rsplit(":", 1)
                assert int(target_port) == port, target
                scraped.add(host)
        for dns in job.get("dns_sd_configs", []):
            assert dns["port"] == port
            scraped.update(dns["names"])
    assert scraped == {"router", "executor", "resumer"}
    assert scraped <= set(compose["services"])


def test_grafana_provisions_the_dashboard_and_the_compose_prometheus() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "interlock.yaml").read_text())
    (provider,) = providers["providers"]
    assert _in_container(mounts, provider["options"]["path"] + "/interlock.json") == DASHBOARD
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _in_container(mounts, home) == DASHBOARD
    sources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]
