"""Issue 11 §1/§4: a config or env file that cannot be read says why, where and how to
fix it (never hangs on a FIFO); an env line that does not parse is never echoed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.core.config import find_config, load_project
from devstack.core.envfile import read_env_file
from devstack.core.errors import DevstackError


def config_error(path: Path) -> str:
    with pytest.raises(DevstackError) as caught:
        load_project(path)
    return caught.value.render()


def env_problems(path: Path) -> str:
    env_file = read_env_file(path, path.name)
    assert env_file.exists and not env_file.entries
    return "\n".join(problem.render() for problem in env_file.problems)


def test_dangling_symlink_config_names_its_target(tmp_path: Path) -> None:
    (tmp_path / "devstack.yaml").symlink_to(tmp_path / "gone.yaml")
    assert find_config(tmp_path) == tmp_path / "devstack.yaml"
    assert "symbolic link to" in config_error(tmp_path / "devstack.yaml")
    assert "gone.yaml, which does not exist" in config_error(tmp_path / "devstack.yaml")


def test_looping_symlink_config_and_env_file(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "symbolic link that loops" in config_error(tmp_path / "a")
    assert "symbolic link that loops" in env_problems(tmp_path / "b")


def test_dangling_symlink_env_file_is_not_silently_absent(tmp_path: Path) -> None:
    (tmp_path / ".env").symlink_to(tmp_path / "shared" / ".env")
    assert "which does not exist" in env_problems(tmp_path / ".env")


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "some.fifo")
    assert "not a regular file" in config_error(tmp_path / "some.fifo")
    assert "not a regular file" in env_problems(tmp_path / "some.fifo")


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    assert "is a directory" in config_error(tmp_path)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("A=1\nB=café\n".encode("latin-1"), [".env:2:", "0xE9", "Latin-1", "UTF-8"]),
        ("A=1\n".encode("utf-16"), ["UTF-16 encoded", "iconv"]),
        ("A=1\nB=2\n".encode("utf-16-le"), ["UTF-16 encoded"]),
        ("A=1\n".encode("utf-32"), ["UTF-32 encoded"]),
    ],
)
def test_env_file_in_another_encoding_names_it_and_the_line(
    tmp_path: Path, data: bytes, expected: list[str]
) -> None:
    (tmp_path / ".env").write_bytes(data)
    text = env_problems(tmp_path / ".env")
    for part in expected:
        assert part in text


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xef\xbb\xbfAPI_URL=x\n")
    assert [e.name for e in read_env_file(tmp_path / ".env", ".env").entries] == ["API_URL"]


@pytest.mark.parametrize(
    "line", ['API_TOKEN="sk_live_51Hplanted', "export DB_PASSWORD='planted pw", "plantedsecret x"]
)
def test_an_unparsable_line_is_never_echoed(tmp_path: Path, line: str) -> None:
    (tmp_path / ".env").write_text(f"OK=1\n{line}\n")
    text = env_problems_any(tmp_path / ".env")
    assert ".env:2:" in text
    assert "planted" not in text


def env_problems_any(path: Path) -> str:
    return "\n".join(p.render() for p in read_env_file(path, path.name).problems)
