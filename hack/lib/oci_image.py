#!/usr/bin/env python3
"""The sessionplane image: its static binary as /sessionplane, user 65532, packed by
hack/node/oci_pack.py into a reproducible single-layer OCI image layout tarball (with a
Docker-style manifest.json, so `ctr images import`, `docker load` and
`kind load image-archive` all accept it), and a verifier for that tarball.
"""
import argparse
import gzip
import io
import json
import os
import sys
import tarfile

# One image writer for every image here: hack/node/oci_pack.py (the node's images use it too).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node"))
import oci_pack  # noqa: E402
from oci_pack import sha256  # noqa: E402

UID = 65532
PASSWD = f"nonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n".encode()
GROUP = f"nonroot:x:{UID}:\n".encode()


def build(binary, ref):
    """The image tarball and its manifest digest."""
    data = oci_pack.image(
        {"sessionplane": binary, "etc/passwd": PASSWD, "etc/group": GROUP},
        ref,
        entrypoint=["/sessionplane"],
        user=f"{UID}:{UID}",
        env=["PATH=/"],
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (desc,) = json.loads(tar.extractfile("index.json").read())["manifests"]
    return data, desc["digest"]


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
