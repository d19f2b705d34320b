#!/usr/bin/env python3
"""Packs static binaries into a single-layer OCI image layout tarball, with no Docker.

Every image here comes from it: the node's (pause, CoreDNS, the smoke-test responder), the
demo frontend's (hack/e2e/demo_image.py) and sessionplane's own (hack/lib/oci_image.py),
each with its own entrypoint and user. The output is reproducible (fixed mtimes, owners and gzip header) and
carries index.json plus a Docker-style manifest.json, so `ctr images import` and
`kind load image-archive` both accept it.

    oci_pack.py --ref REF --out TAR --entrypoint /pause --user 65535:65535 \
        --file /pause=build/pause [--file /etc/x=local/x ...]
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None:
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def layer(files, user):
    """files: {path in image: bytes}. Directories are created on the way; /etc/passwd names the user."""
    uid, _, gid = user.partition(":")
    entries = dict(files)
    entries.setdefault("etc/passwd", f"root:x:0:0:root:/:/nonexistent\nuser:x:{uid}:{gid or uid}:user:/:/nonexistent\n".encode())
    entries.setdefault("etc/group", f"root:x:0:\nuser:x:{gid or uid}:\n".encode())
    dirs = set()
    for path in entries:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            add(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        for path in sorted(entries):
            data = entries[path]
            executable = data[:4] == b"\x7fELF"
            add(tar, path, data, mode=0o755 if executable else 0o644)
    return buf.getvalue()


def image(files, ref, entrypoint, user, env):
    raw = layer(files, user)
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"User": user, "Entrypoint": entrypoint, "Env": env, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/node/oci_pack.py"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(gz), "size": len(gz)}],
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest),
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
        }],
    })

    def blob(data):
        return "blobs/sha256/" + hashlib.sha256(data).hexdigest()

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "blobs", mode=0o755, kind=tarfile.DIRTYPE)
        add(tar, "blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE)
        for data in sorted((config, gz, manifest), key=sha256):
            add(tar, blob(data), data)
        add(tar, "index.json", index)
        add(tar, "manifest.json", canonical([{"Config": blob(config), "RepoTags": [ref], "Layers": [blob(gz)]}]))
        add(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
    return out.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--entrypoint", required=True, help="path in the image")
    p.add_argument("--user", default="65532:65532")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--file", action="append", required=True, metavar="IMAGEPATH=HOSTPATH")
    args = p.parse_args()
    files = {}
    for spec in args.file:
        dest, sep, src = spec.partition("=")
        if not sep or not dest.startswith("/"):
            p.error(f"--file wants /path/in/image=host/path, got {spec!r}")
        with open(src, "rb") as f:
            files[dest.lstrip("/")] = f.read()
    data = image(files, args.ref, [args.entrypoint], args.user, args.env or ["PATH=/"])
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
