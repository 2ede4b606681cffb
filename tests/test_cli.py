"""The command line: config checking, defaults, and the served process's lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from edgeproxy.cli import main
from edgeproxy.config import default_config_text

REPO = Path(__file__).resolve().parents[1]
BAD_CONFIG = """
providers: {mock: {kind: mock}}
models:
  gpt-4o:
    deployments:
      - {provider: mock}
      - {provider: mock, weight: high}
"""


def test_check_config_accepts_the_reference_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "configs" / "edgeproxy.yaml")]) == 0
    assert "ok (1 providers, 1 models)" in capsys.readouterr().out


def test_check_config_names_the_bad_field_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    assert main(["check-config", str(path)]) == 1
    assert 'models.gpt-4o.deployments[1].weight: expected a number > 0, got "high"' in (
        capsys.readouterr().err
    )


def test_print_default_config_prints_the_embedded_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["print-default-config"]) == 0
    assert capsys.readouterr().out == default_config_text()


def run_proxy(config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgeproxy", "serve", "--config", str(config)],
        env={**os.environ, "EDGEPROXY_LOG_LEVEL": "info", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_serve_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    process = run_proxy(path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "weight: expected a number > 0" in err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real `edgeproxy serve` process on free ports, with a slowly streaming mock model."""
    path = tmp_path / "proxy.yaml"
    path.write_text(
        """
server: {port: 0, shutdown_grace: 10s, drain_delay: 0s}
admin: {host: 127.0.0.1, port: 0}
providers:
  slow: {kind: mock, mock: {stream_chunks: 5, chunk_interval: 200ms}}
models:
  slow: {deployments: [{provider: slow}]}
"""
    )
    process = run_proxy(path)
    try:
        assert process.stderr is not None
        started = orjson.loads(process.stderr.readline())
        assert started["msg"] == "edgeproxy listening"
        yield process, started["url"]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_sigterm_lets_an_in_flight_stream_finish_then_exits_cleanly(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    import openai

    process, url = served
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as sdk:
        plain = sdk.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "hi"}]
        )
        stream = sdk.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = iter(stream)
        first = next(chunks)
        process.send_signal(signal.SIGTERM)
        rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == plain.choices[0].message.content
    assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("configured", "flag", "pod"),
    [(1, None, None), (3, None, 3), (3, "1", None), (1, "2", 2)],
    ids=["one-process", "configured", "flag-wins-down", "flag-wins-up"],
)
def test_serve_runs_a_pod_when_workers_are_asked_for_by_config_or_flag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    configured: int,
    flag: str | None,
    pod: int | None,
) -> None:
    from edgeproxy import app, workers
    from edgeproxy.telemetry import logging

    ran: list[object] = []
    monkeypatch.setattr(logging, "configure", lambda *_: None)  # the test's logging stays

    async def serve(
        config: object, path: object = None, worker: object = None, seen: object = None
    ) -> None:
        ran.append(("process", worker))

    monkeypatch.setattr(app, "serve", serve)
    monkeypatch.setattr(workers, "run_pod", lambda config, path, count: ran.append(count) or 0)
    path = tmp_path / "proxy.yaml"
    path.write_text(f"server: {{workers: {configured}}}\n")
    argv = ["serve", "--config", str(path), *(["--workers", flag] if flag else [])]
    assert main(argv) == 0
    assert ran == [pod if pod is not None else ("process", None)]


def test_serve_refuses_fewer_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--workers", "0"])
    assert "expected a number >= 1, got 0" in capsys.readouterr().err
