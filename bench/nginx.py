"""nginx as the reference below the floor: what a reverse proxy in C costs on this machine.

It runs as the plainest reverse proxy to the fake upstream, on the proxy's core, measured in
the same interleaved runs. It is a lower bound, not a rival: it cannot read JSON, so it maps
no model name and routes, meters and caches nothing; it forwards the body as sent. What it
adds over a direct call is close to the kernel's socket work, which any proxy pays.

Everything it writes (its config, pid file and temp directories) stays under the bench's
results directory, and its errors go to its log there; it never touches /var.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.procs import Child, Children

SBIN = Path("/usr/sbin")  # where distributions install it, often off a user's PATH
KEEPALIVE = 64  # idle upstream connections kept, as the proxy's max_connections
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def locate(path: str | None = None, sbin: Path = SBIN) -> Path | None:
    """The nginx binary on `path` (default: $PATH) or in `sbin`; None when there is none."""
    found = shutil.which("nginx", path=path)
    if found is not None:
        return Path(found)
    fallback = sbin / "nginx"
    return fallback if fallback.is_file() and os.access(fallback, os.X_OK) else None


def version(binary: Path) -> str:
    """`nginx/1.22.1`, as `nginx -v` says it (on stderr)."""
    done = subprocess.run(
        [str(binary), "-v"], capture_output=True, text=True, timeout=5, check=False
    )
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def config(port: int, upstream: str, workdir: Path) -> str:
    """A reverse proxy on 127.0.0.1:`port` to `upstream` (host:port), one worker, in the
    foreground, with every path it writes under `workdir`.

    The upstream connections are kept alive (HTTP/1.1, an idle pool, `Connection` cleared),
    as every proxy measured here keeps them; responses are relayed as they arrive
    (`proxy_buffering off`), as a sidecar must relay streams; and no connection is closed
    after a request count, which edgeproxy never does either.
    """
    temp = "\n".join(f"    {name}_temp_path {workdir / name}_temp;" for name in _TEMP_DIRS)
    return f"""\
daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
{temp}
    keepalive_requests 1000000;

    upstream fake_upstream {{
        server {upstream};
        keepalive {KEEPALIVE};
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fake_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def argv(binary: Path, config_path: Path, workdir: Path) -> list[str]:
    """nginx on `config_path`, its prefix `workdir`, its start-up errors on stderr (before
    the config is read it would write to the compiled-in log under /var)."""
    return [str(binary), "-c", str(config_path), "-p", str(workdir), "-e", "stderr"]


def start(
    children: Children,
    binary: Path,
    upstream_url: str,
    port: int,
    cores: frozenset[int] | None,
    *,
    results: Path,
    name: str = "nginx",
) -> Child:
    """nginx in front of the fake upstream at `upstream_url` (http://host:port), pinned to
    `cores` (its worker inherits them) and counted with its worker; its config is left in
    `results`, its pid file and temp directories in `results`/nginx."""
    workdir = results / "nginx"
    workdir.mkdir(parents=True, exist_ok=True)
    path = results / f"{name.replace(' ', '-')}.conf"
    path.write_text(config(port, upstream_url.removeprefix("http://"), workdir))
    try:
        return children.server(name, argv(binary, path, workdir), port, cores, workers=True)
    except RuntimeError as err:
        raise RuntimeError(f"{err}\n(--no-nginx leaves nginx out of the run)") from err
