"""The exporters as pure functions: devstack.yaml text -> files and notes (issue 18).

The targets' own tools check the same exports in tests/integration/test_export.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from devstack.core.config import parse_project
from devstack.core.envresolve import resolve_project
from devstack.core.errors import DevstackError
from devstack.export.compose import dotenv, duration, export_compose
from devstack.export.kubernetes import export_kubernetes
from devstack.export.stack import PRIVATE, Export, Stack, build_stack
from devstack.export.yamlout import dump

SECRET = "s3cr3t-planted-value"

STACK = f"""\
image: node:22-slim
services:
  migrate:
    cmd: [bun, run, migrate]
    cwd: packages/db
    env: ["DB_PASSWORD={SECRET}"]
  api:
    cmd: bun run dev --port $PORT
    cwd: apps/api
    port: 3000
    env: [LOG_LEVEL=debug, "API_TOKEN={SECRET}"]
    depends_on: {{migrate: {{condition: completed}}, cache: {{condition: ready}}}}
    ready: {{http: "http://127.0.0.1:3000/health", timeout: 30, interval: 0.5}}
    restart: on-failure
    max_restarts: 3
    watch: [src/]
  cache:
    cmd: redis-server
    image: redis:7
    ready: {{tcp: "127.0.0.1:6379"}}
    restart: always
  worker:
    cmd: bun run worker
    depends_on: {{api: {{condition: ready}}, logs: {{condition: started}}}}
    ready: {{log: "worker ready"}}
    stop_signal: SIGINT
    stop_timeout: 12.5
  logs:
    cmd: tail -f /dev/null
    autostart: false
  admin:
    cmd: bun run admin
    autostart: false
    ready: {{cmd: "test -f /tmp/ready"}}
"""


def make_stack(tmp_path: Path, config: str = STACK, names: list[str] | None = None) -> Stack:
    path = tmp_path / "repo" / "devstack.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(config))
    project = parse_project(path.read_text(), path)
    env = resolve_project(project, {"PATH": "/usr/bin", "HOME": "/home/me"}, {})
    return build_stack(project, env, names or [], output_dir=tmp_path / "out")


def contents(export: Export) -> dict[str, str]:
    return {file.name: file.content for file in export.files}


# -- the YAML emitter --------------------------------------------------------


TRICKY = ["y", "n", "No", "ON", "off", "True", "null", "~", "0755", "0o17", "1e3", "1_000",
          "12:30", ".inf", "-", "- x", "#x", "a: b", "", " x", "x ", "$$", "@x", "*x", "&x",
          "!x", "%x", "multi\nline", "'q'", '"q"', "é", "1.0", "0x1F", "+1"]  # fmt: skip


@pytest.mark.parametrize("value", TRICKY)
def test_strings_that_yaml_would_retype_are_quoted_and_read_back(value: str) -> None:
    text = dump({value: value})
    assert yaml.safe_load(text) == {value: value}
    assert text.count('"') >= 4 or "\\" in text  # key and value both double-quoted


@pytest.mark.parametrize("value", ["api", "/bin/sh", "services/api", "app.kubernetes.io/name"])
def test_plain_words_stay_plain(value: str) -> None:
    assert dump({value: value}) == f"{value}: {value}\n"


# -- compose -----------------------------------------------------------------


def test_compose_maps_each_service(tmp_path: Path) -> None:
    export = export_compose(make_stack(tmp_path))
    services = yaml.safe_load(contents(export)["compose.yaml"])["services"]
    assert list(services) == ["migrate", "api", "cache", "worker", "logs", "admin"]
    api = services["api"]
    assert api["image"] == "node:22-slim"
    assert api["command"] == ["/bin/sh", "-c", "bun run dev --port $$PORT"]
    assert api["working_dir"] == "/app/apps/api"
    assert api["volumes"] == [{"type": "bind", "source": "../repo", "target": "/app"}]
    assert api["init"] is True
    assert api["environment"] == {"LOG_LEVEL": "debug", "PORT": "3000"}
    assert api["env_file"] == ["api.secrets.env"]
    assert api["ports"] == ["3000:3000"]
    assert api["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "cache": {"condition": "service_healthy"},
    }
    assert api["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:3000/health" in api["healthcheck"]["test"][1]
    assert (api["healthcheck"]["interval"], api["healthcheck"]["retries"]) == ("500ms", 60)
    assert api["restart"] == "on-failure:3"
    assert services["cache"]["image"] == "redis:7"
    assert services["cache"]["restart"] == "always"
    assert services["migrate"]["command"] == ["bun", "run", "migrate"]
    assert services["migrate"]["restart"] == "no"
    worker = services["worker"]
    # api has an http probe: healthy; logs has none, so started is exact
    assert worker["depends_on"] == {
        "api": {"condition": "service_healthy"},
        "logs": {"condition": "service_started"},
    }
    assert "healthcheck" not in worker  # a log probe has no command equivalent
    assert (worker["stop_signal"], worker["stop_grace_period"]) == ("SIGINT", "12500ms")
    assert "profiles" not in services["logs"]  # worker needs it, so it starts with the stack
    assert services["admin"]["profiles"] == ["manual"]
    assert services["admin"]["healthcheck"]["test"] == ["CMD-SHELL", "test -f /tmp/ready"]


def test_compose_notes_what_it_cannot_express(tmp_path: Path) -> None:
    notes = "\n".join(export_compose(make_stack(tmp_path)).notes)
    assert "worker: ready: {log: 'worker ready'} has no healthcheck equivalent" in notes
    assert "api: watch: is dropped" in notes


def test_compose_secrets_only_in_private_env_files(tmp_path: Path) -> None:
    export = export_compose(make_stack(tmp_path))
    holding = {file.name for file in export.files if SECRET in file.content}
    assert holding == {"api.secrets.env", "migrate.secrets.env"}
    assert all(file.mode == PRIVATE for file in export.files if file.name in holding)


def test_compose_escapes_dollars_everywhere(tmp_path: Path) -> None:
    config = """\
    image: alpine
    services:
      web: {cmd: 'echo "$HOME"', env: ["PRICE=$$5"]}
    """
    web = yaml.safe_load(contents(export_compose(make_stack(tmp_path, config)))["compose.yaml"])
    assert web["services"]["web"]["command"][2] == 'echo "$$HOME"'
    assert web["services"]["web"]["environment"] == {"PRICE": "$$5"}


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", "X='plain'"),
        ("$HOME ${Y} \\n", "X='$HOME ${Y} \\n'"),
        ("it's", 'X="it\'s"'),
        ('it\'s "$x" \\', 'X="it\'s \\"\\$x\\" \\\\"'),
        ("a\nb'", 'X="a\\nb\'"'),
        ("", "X=''"),
    ],
)
def test_compose_env_file_quoting(value: str, line: str) -> None:
    assert dotenv({"X": value}) == f"{line}\n"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (1, "1s"), (60, "60s"), (12.5, "12500ms")]
)
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_selection_brings_dependencies(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, names=["api"])
    assert [service.name for service in stack.services] == ["migrate", "api", "cache"]


def test_shell_basics_are_left_to_the_target(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    assert stack.left_to_target == ("HOME", "PATH")
    assert all("PATH" not in service.env for service in stack.services)


def test_a_service_without_image_is_an_error_naming_each(tmp_path: Path) -> None:
    config = "services:\n  a: {cmd: x}\n  b: {cmd: y, image: alpine}\n  c: {cmd: z}\n"
    with pytest.raises(DevstackError) as raised:
        export_compose(make_stack(tmp_path, config))
    text = raised.value.render()
    assert "'a' has no image" in text and "'c' has no image" in text and "'b'" not in text
    assert "devstack.yaml:2" in text


def test_exports_are_deterministic(tmp_path: Path) -> None:
    for export in (export_compose, export_kubernetes):
        assert export(make_stack(tmp_path)) == export(make_stack(tmp_path))


# -- kubernetes --------------------------------------------------------------


def k8s_objects(tmp_path: Path, config: str = STACK) -> dict[tuple[str, str], dict[str, object]]:
    export = export_kubernetes(make_stack(tmp_path, config))
    found = {}
    for text in contents(export).values():
        for obj in yaml.safe_load_all(text):
            found[(obj["kind"], obj["metadata"]["name"])] = obj
    return found


def test_kubernetes_objects(tmp_path: Path) -> None:
    objects = k8s_objects(tmp_path)
    assert sorted(objects) == sorted(
        [("Job", "migrate"), ("Secret", "migrate-secrets"),
         ("Deployment", "api"), ("ConfigMap", "api-env"), ("Secret", "api-secrets"),
         ("Service", "api"), ("Deployment", "cache"), ("Deployment", "worker"),
         ("Deployment", "logs"), ("Deployment", "admin")]
    )  # fmt: skip
    api = objects[("Deployment", "api")]
    labels = api["metadata"]["labels"]  # type: ignore[index]
    assert labels["app.kubernetes.io/name"] == "api"
    assert labels["app.kubernetes.io/part-of"] == "repo"
    container = api["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": 3000, "scheme": "HTTP"},
        "periodSeconds": 1,
        "failureThreshold": 30,
    }
    assert container["envFrom"] == [
        {"configMapRef": {"name": "api-env"}},
        {"secretRef": {"name": "api-secrets"}},
    ]
    assert container["workingDir"] == "/app/apps/api"
    cache = objects[("Deployment", "cache")]["spec"]["template"]["spec"]  # type: ignore[index]
    assert cache["containers"][0]["readinessProbe"]["tcpSocket"] == {"port": 6379}
    admin = objects[("Deployment", "admin")]
    assert admin["spec"]["replicas"] == 0  # type: ignore[index]
    probe = admin["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]  # type: ignore[index]
    assert probe["exec"] == {"command": ["/bin/sh", "-c", "test -f /tmp/ready"]}
    job = objects[("Job", "migrate")]["spec"]  # type: ignore[index]
    assert job["backoffLimit"] == 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert objects[("Service", "api")]["spec"]["ports"][0]["port"] == 3000  # type: ignore[index]


def test_kubernetes_secrets_only_in_the_private_secret_file(tmp_path: Path) -> None:
    export = export_kubernetes(make_stack(tmp_path))
    holding = [file for file in export.files if SECRET in file.content]
    assert [(file.name, file.mode) for file in holding] == [("secrets.yaml", PRIVATE)]


def test_kubernetes_notes(tmp_path: Path) -> None:
    notes = "\n".join(export_kubernetes(make_stack(tmp_path)).notes)
    assert "worker: ready: {log: 'worker ready'} has no readiness probe equivalent" in notes
    assert "api: depends_on migrate (completed) is dropped" in notes
    assert "worker: stop_signal SIGINT becomes SIGTERM" in notes
    assert "api: watch: is dropped" in notes


def test_kubernetes_names_that_clash_are_an_error(tmp_path: Path) -> None:
    config = "image: x\nservices:\n  my_api: {cmd: a}\n  my.api: {cmd: b}\n  9lives: {cmd: c}\n"
    with pytest.raises(DevstackError, match=r"'my_api' and 'my\.api' both become 'my-api'"):
        export_kubernetes(make_stack(tmp_path, config))
    config = "image: x\nservices:\n  My_Api: {cmd: a}\n  9lives: {cmd: c}\n"
    assert {name for _, name in k8s_objects(tmp_path, config)} == {"my-api", "svc-9lives"}


# -- config ------------------------------------------------------------------


def test_image_per_service_beats_the_default_and_the_option(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    images = {service.name: service.image for service in stack.services}
    assert images["cache"] == "redis:7" and images["api"] == "node:22-slim"


def test_image_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(DevstackError, match=r"services\.a\.image"):
        make_stack(tmp_path, "services:\n  a: {cmd: x, image: [1]}\n")


# -- systemd and supervisord (through honcho's exporters) ------------------------


def test_systemd_units(tmp_path: Path) -> None:
    from devstack.export.systemd import export_systemd

    export = export_systemd(make_stack(tmp_path))
    files = contents(export)
    assert "repo.target" in files and "repo-api.target" in files
    api = files["repo-api.service"]
    assert "After=repo-migrate.service repo-cache.service\n" in api
    assert "Requires=repo-migrate.service repo-cache.service\n" in api
    assert "Restart=on-failure\n" in api and "StartLimitBurst=4\n" in api
    assert 'ExecStart="/bin/sh" "-c" "bun run dev --port $$PORT"\n' in api
    assert f"EnvironmentFile={tmp_path}/out/repo-api.env\n" in api
    assert "ExecStartPost=" in api and "TimeoutStartSec=30000ms" in api
    assert "KillSignal=SIGTERM" in api and "KillMode=control-group" in api
    migrate = files["repo-migrate.service"]
    assert "Type=oneshot\nRemainAfterExit=yes\n" in migrate  # api waits for it to complete
    assert 'ExecStart="bun" "run" "migrate"' in migrate
    assert "Wants=" not in files["repo-admin.target"]  # autostart: false
    assert "WantedBy=default.target" in files["repo.target"]  # a user unit
    private = {file.name for file in export.files if file.mode == PRIVATE}
    assert private == {f"repo-{name}.env" for name in
                       ("migrate", "api", "cache", "worker", "logs", "admin")}  # fmt: skip
    assert all(SECRET not in text for name, text in files.items() if name not in private)
    assert "worker: ready: {log: 'worker ready'} is dropped" in "\n".join(export.notes)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("/bin/sh", "-c", 'echo "$HOME" 100%'), '"/bin/sh" "-c" "echo \\"$$HOME\\" 100%%"'),
        (("a\\b", "x\ny"), '"a\\\\b" "x\\ny"'),
    ],
)
def test_systemd_command_lines(argv: tuple[str, ...], line: str) -> None:
    from devstack.export.systemd import command_line

    assert command_line(argv) == line


def test_systemd_environment_file_quoting(tmp_path: Path) -> None:
    from devstack.export.systemd import environment_file

    service = make_stack(tmp_path).services[0]
    service = type(service)(**{**service.__dict__, "env": {"A": "x $y", "B": 'it\'s "$q" \\'}})
    assert environment_file(service) == (
        f"A='x $y'\nB=\"it's \\\"\\$q\\\" \\\\\"\nDB_PASSWORD='{SECRET}'\n"
    )


def test_supervisord_programs(tmp_path: Path) -> None:
    from devstack.export.supervisord import export_supervisord

    export = export_supervisord(make_stack(tmp_path))
    conf = contents(export)["repo.conf"]
    assert "[group:repo]\nprograms=migrate,api,cache,worker,logs,admin\n" in conf
    assert SECRET not in conf
    api = conf.split("[program:api]\n")[1].split("\n\n")[0]
    assert f"directory={tmp_path}/repo/apps/api\n" in api
    assert "autorestart=unexpected\nstartsecs=0\nstartretries=3\n" in api
    assert f". {tmp_path}/out/repo-api.env && set +a && exec /bin/sh -c" in api
    worker = conf.split("[program:worker]\n")[1].split("\n\n")[0]
    assert "stopsignal=INT\nstopwaitsecs=13\n" in worker
    assert "autostart=false" in conf.split("[program:admin]\n")[1]
    priorities = {
        name: int(conf.split(f"[program:{name}]\n")[1].split("priority=")[1].split("\n")[0])
        for name in ("migrate", "cache", "api", "worker")
    }
    assert priorities["migrate"] < priorities["api"] < priorities["worker"]
    assert priorities["cache"] < priorities["api"]
    notes = "\n".join(export.notes)
    assert "api: depends_on cache (ready) is only a start order" in notes


def test_a_cwd_outside_the_repo_cannot_be_mounted(tmp_path: Path) -> None:
    config = "image: x\nservices:\n  a: {cmd: x, cwd: ../elsewhere}\n"
    with pytest.raises(DevstackError, match=r"'a' runs in .*outside the repo"):
        export_compose(make_stack(tmp_path, config))
