"""The webhook's TLS certificate, picked up again when its files change.

cert-manager renews the certificate into the mounted Secret, and the kubelet swaps the files
through a `..data` symlink. Each TLS handshake compares the files' identity (inode, size,
modification time, read through the symlinks) with the loaded ones and loads them again when it
changed, so a renewed certificate is served from the next connection on, with no timer and no
restart. A pair that cannot be loaded (caught half-written) keeps the previous certificate and
is tried again at the next handshake.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger("edgeproxy.injector")

Stamp = tuple[tuple[int, int, int], ...]


def _stamp(*paths: Path) -> Stamp:
    stamps = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stamps.append((0, 0, 0))
            continue
        stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class ReloadingCertificate:
    """A server SSLContext whose certificate follows the files at `cert` and `key`."""

    def __init__(self, cert: str | Path, key: str | Path) -> None:
        self._cert, self._key = Path(cert), Path(key)
        self._stamp = _stamp(self._cert, self._key)
        self.context = self._load()  # raises when the first pair is unusable
        self.context.sni_callback = self._on_hello
        self._current = self.context

    def _load(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert, self._key)
        return context

    def _on_hello(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        stamp = _stamp(self._cert, self._key)
        if stamp != self._stamp:
            try:
                self._current = self._load()
            except (OSError, ssl.SSLError) as exc:
                log.warning("cannot load the renewed certificate", extra={"error": str(exc)})
            else:
                self._stamp = stamp
                log.info("certificate reloaded", extra={"cert": str(self._cert)})
        if self._current is not self.context:
            connection.context = self._current
