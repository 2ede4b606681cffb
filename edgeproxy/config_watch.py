"""Noticing that the configuration file changed, the way a mounted ConfigMap changes.

The kubelet never rewrites a mounted ConfigMap's file. It writes the new contents into a new
timestamped directory, points a `..data_tmp` symlink at it and renames that over `..data`;
the file the proxy was given (`edgeproxy.yaml -> ..data/edgeproxy.yaml`) now resolves to
another inode. A watch on the file's inode (inotify on the file) never fires; what changes is
the directory. So the path is polled, following its symlinks each time, and the contents it
resolves to now are hashed: a touched but unchanged file is not a reload, and a rewrite is
seen even when it kept the file's size and (at the clock's granularity) its modification time,
which a `stat` alone could miss.

Polling rather than inotify: no dependency, the same on every filesystem (the kubelet's
tmpfs, overlay, NFS), and reading and hashing a file of a few kilobytes every interval (2 s
by default) costs nothing measurable next to the kubelet's own sync period of about a minute.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(path: Path) -> str | None:
    """The SHA-256 of the contents `path` resolves to now (every symlink followed: the
    ConfigMap's `..data` swap shows); None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatch:
    """Tells whether the file at `path` holds other contents than when last asked (first:
    than `seen`, the digest of what the running configuration was read from, if given)."""

    __slots__ = ("_digest", "path")

    def __init__(self, path: Path, seen: str | None = None) -> None:
        self.path = path
        self._digest = digest(path) if seen is None else seen

    def changed(self) -> bool:
        """Whether the contents differ from those seen last (a file that became unreadable
        counts as a change once: the reload then says it cannot read it)."""
        contents = digest(self.path)
        if contents == self._digest:
            return False
        self._digest = contents
        return True
