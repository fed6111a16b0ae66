"""Turn a root file system folder into a one-layer image archive that `docker load` accepts.

    python3 scripts/rootfs_image.py ROOTFS ARCH TAG OUT.tar [--label KEY=VALUE ...]

The image config names ARCH, so an arm64 root made on an amd64 host becomes an arm64 image (`docker import`
records the host's architecture whatever it is told). The layer is reproducible: entries sorted, times fixed,
owners numeric; /dev, /proc and /sys are left empty.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile

EPOCH = 0
SKIP_CONTENTS = {"dev", "proc", "sys", "run", "tmp"}
LIB_PATH = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def layer(root: str, out: io.BufferedRandom) -> str:
    digest = hashlib.sha256()

    class Hashing(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b):  # type: ignore[override]
            digest.update(b)
            out.write(b)
            return len(b)

    with tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in walk(root):
            rel = os.path.relpath(path, root)
            info = tar.gettarinfo(path, arcname=rel)
            if info.ischr() or info.isblk() or info.isfifo():
                continue
            info.mtime = EPOCH
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return "sha256:" + digest.hexdigest()


def walk(root: str):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != "." and rel.split(os.sep)[0] in SKIP_CONTENTS and rel not in SKIP_CONTENTS:
            dirnames[:] = []
            continue
        if rel != ".":
            yield dirpath
        if rel in SKIP_CONTENTS:
            dirnames[:] = []
            continue
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            yield os.path.join(dirpath, name)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("arch", choices=sorted(LIB_PATH))
    parser.add_argument("tag")
    parser.add_argument("out")
    parser.add_argument("--label", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryFile() as layer_file:
        diff_id = layer(args.root, layer_file)
        size = layer_file.tell()
        lib = LIB_PATH[args.arch]
        config = {
            "architecture": args.arch,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    # the foreign root is never configured, so it has no ld.so.cache
                    f"LD_LIBRARY_PATH=/usr/lib/{lib}:/lib/{lib}",
                    "LANG=C.UTF-8",
                ],
                "Cmd": ["python3"],
                "Labels": dict(label.split("=", 1) for label in args.label),
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "debootstrap (edgebench base)"}],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_name = diff_id.split(":")[1] + "/layer.tar"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [args.tag], "Layers": [layer_name]}]).encode()
        with tarfile.open(args.out, "w") as tar:
            for name, data in ((config_name, config_bytes), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(layer_name)
            info.size = size
            layer_file.seek(0)
            tar.addfile(info, layer_file)


if __name__ == "__main__":
    main()
