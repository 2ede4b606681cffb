"""nginx as the bench's reference: the config it is given, where it writes, how it is found.
Nothing here needs nginx installed but the one syntax check, skipped without it."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest

from bench import nginx

UPSTREAM = "127.0.0.1:9000"


def _config(workdir: Path) -> str:
    return nginx.config(8123, UPSTREAM, workdir)


@pytest.mark.parametrize(
    "directive",
    [
        "daemon off;",
        "worker_processes 1;",
        "access_log off;",
        "listen 127.0.0.1:8123;",
        f"server {UPSTREAM};",
        f"keepalive {nginx.KEEPALIVE};",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "error_log stderr warn;",
    ],
)
def test_config_is_a_plain_keep_alive_reverse_proxy_on_loopback(
    tmp_path: Path, directive: str
) -> None:
    assert directive in _config(tmp_path)


def test_config_reads_nothing_of_the_body(tmp_path: Path) -> None:
    """No model-name mapping: nginx forwards what it was sent, which is why it is a lower
    bound."""
    text = _config(tmp_path)
    assert "proxy_set_body" not in text and "rewrite" not in text


def test_every_path_it_writes_is_under_its_workdir(tmp_path: Path) -> None:
    text = _config(tmp_path)
    paths = re.findall(r"\s(/\S+);", text)
    assert paths, "pid and temp paths are absolute"
    assert all(Path(path).is_relative_to(tmp_path) for path in paths)
    assert "/var" not in text
    argv = nginx.argv(Path("/usr/sbin/nginx"), tmp_path / "nginx.conf", tmp_path)
    assert argv[argv.index("-p") + 1] == str(tmp_path)
    assert argv[argv.index("-e") + 1] == "stderr"  # before the config is read, too


def _executable(folder: Path) -> Path:
    folder.mkdir()
    binary = folder / "nginx"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


def test_it_is_found_on_the_path_first_then_in_sbin(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "bin")
    in_sbin = _executable(tmp_path / "sbin")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert nginx.locate(path=str(on_path.parent), sbin=in_sbin.parent) == on_path
    assert nginx.locate(path=str(empty), sbin=in_sbin.parent) == in_sbin
    assert nginx.locate(path=str(empty), sbin=empty) is None


def test_a_file_in_sbin_that_cannot_run_is_not_nginx(tmp_path: Path) -> None:
    (tmp_path / "nginx").write_text("not a program")
    assert nginx.locate(path=str(tmp_path / "nowhere"), sbin=tmp_path) is None


@pytest.mark.skipif(nginx.locate() is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = nginx.locate()
    assert binary is not None
    config = tmp_path / "nginx.conf"
    config.write_text(_config(tmp_path))
    checked = subprocess.run(
        [*nginx.argv(binary, config, tmp_path), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
