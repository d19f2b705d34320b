#!/usr/bin/env python3
"""Writes a single-layer OCI image layout tarball from a static binary, with no Docker.

The output is byte-for-byte reproducible: every tar entry has a fixed mtime, owner and mode,
and gzip carries no timestamp. It holds the OCI layout (oci-layout, index.json, blobs/sha256)
plus a Docker-style manifest.json, so `ctr images import`, `docker load` and
`kind load image-archive` all accept it.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

EPOCH = 0
UID = 65532
PASSWD = f"nonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n".encode()
GROUP = f"nonroot:x:{UID}:\n".encode()


def tar_add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None:
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def layer_tar(binary):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar_add(tar, "etc", mode=0o755, kind=tarfile.DIRTYPE)
        tar_add(tar, "etc/group", GROUP)
        tar_add(tar, "etc/passwd", PASSWD)
        tar_add(tar, "sessionplane", binary, mode=0o755)
    return buf.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(binary, ref):
    layer = layer_tar(binary)
    layer_gz = gzip.compress(layer, compresslevel=9, mtime=0)
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": ["/sessionplane"],
            "Env": ["PATH=/"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/image.sh: static sessionplane binary"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer_gz), "size": len(layer_gz)}],
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
    blob = lambda data: "blobs/sha256/" + sha256(data).split(":", 1)[1]
    docker_manifest = canonical([{"Config": blob(config), "RepoTags": [ref], "Layers": [blob(layer_gz)]}])
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar_add(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        for data in sorted((config, layer_gz, manifest), key=sha256):
            tar_add(tar, blob(data), data)
        tar_add(tar, "index.json", index)
        tar_add(tar, "manifest.json", docker_manifest)
        tar_add(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
    return out.getvalue(), sha256(manifest)


def verify(path):
    """Checks every digest and size the index points at; returns the image reference."""
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    def load(desc):
        data = files["blobs/sha256/" + desc["digest"].split(":", 1)[1]]
        if sha256(data) != desc["digest"] or len(data) != desc["size"]:
            raise ValueError(f"blob {desc['digest']} does not match its descriptor")
        return data

    if json.loads(files["oci-layout"])["imageLayoutVersion"] != "1.0.0":
        raise ValueError("bad oci-layout")
    (desc,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(load(desc))
    config = json.loads(load(manifest["config"]))
    (layer_desc,) = manifest["layers"]
    layer = gzip.decompress(load(layer_desc))
    if config["rootfs"]["diff_ids"] != [sha256(layer)]:
        raise ValueError("diff_id does not match the uncompressed layer")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        entry = tar.getmember("sessionplane")
        if entry.mode & 0o111 == 0 or entry.size == 0:
            raise ValueError("/sessionplane missing or not executable")
        if tar.extractfile("etc/passwd").read() != PASSWD:
            raise ValueError("/etc/passwd does not define uid 65532")
    if config["config"]["User"] != f"{UID}:{UID}" or config["config"]["Entrypoint"] != ["/sessionplane"]:
        raise ValueError("config User/Entrypoint wrong")
    return desc["annotations"]["io.containerd.image.name"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--binary", required=True)
    b.add_argument("--ref", required=True)
    b.add_argument("--out", required=True)
    v = sub.add_parser("verify")
    v.add_argument("path")
    args = parser.parse_args()
    if args.cmd == "build":
        with open(args.binary, "rb") as f:
            data, digest = build(f.read(), args.ref)
        tmp = args.out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, args.out)
        print(digest)
    else:
        try:
            print(verify(args.path))
        except (ValueError, KeyError) as e:
            print(f"invalid image {args.path}: {e}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
