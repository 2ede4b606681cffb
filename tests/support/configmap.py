"""A ConfigMap volume updated the way the kubelet updates one (its AtomicWriter).

    mount/
      ..2026_12_07_15_04_05.000000001/edgeproxy.yaml   the contents, one directory per update
      ..data -> ..2026_12_07_15_04_05.000000001         swapped by one rename
      edgeproxy.yaml -> ..data/edgeproxy.yaml            the path the proxy is given

An update writes a new timestamped directory, points `..data_tmp` at it, renames `..data_tmp`
over `..data` (atomic: a reader sees the old contents or the new, never a mix) and removes the
old directory. The files the proxy opened are never written to.
"""

from __future__ import annotations

from pathlib import Path


class ConfigMapVolume:
    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self._updates = 0
        mount.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.mount / name

    def update(self, files: dict[str, str]) -> None:
        """Publish `files` (name: contents) as the volume's new contents."""
        self._updates += 1
        data = self.mount / "..data"
        previous = data.readlink() if data.is_symlink() else None
        stamped = f"..2026_12_07_15_04_05.{self._updates:09d}"
        (self.mount / stamped).mkdir()
        for name, text in files.items():
            (self.mount / stamped / name).write_text(text, encoding="utf-8")
        (self.mount / "..data_tmp").symlink_to(stamped)
        (self.mount / "..data_tmp").rename(data)  # rename(2): atomic, as the kubelet does
        for name in files:
            link = self.mount / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        if previous is not None:
            for old in (self.mount / previous).iterdir():
                old.unlink()
            (self.mount / previous).rmdir()
