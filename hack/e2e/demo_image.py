#!/usr/bin/env python3
"""Packs the demo frontend into an OCI image tarball, with no Docker: the host's Node.js
binary, the shared libraries ldd lists for it (and the dynamic loader), and a staged copy
of demo/ with its node_modules under /app. Uses hack/node/oci_pack.py for the image format
(reproducible: fixed mtimes, owners and gzip header), so the same inputs give the same
digest.

    demo_image.py --ref REF --out TAR --node /usr/bin/node --app STAGED_DEMO_DIR
"""
import argparse
import importlib.util
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_oci_pack():
    path = os.path.join(HERE, "..", "node", "oci_pack.py")
    spec = importlib.util.spec_from_file_location("oci_pack", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shared_libraries(binary):
    """{path in image: host path} for every library ldd resolves, plus the loader at the
    path the binary's PT_INTERP names (ldd prints it without '=>')."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"^(\S+) => (/\S+) \(", line)
        if m:
            libs[m.group(2)] = m.group(2)
            continue
        m = re.match(r"^(/\S+) \(", line)
        if m:
            libs[m.group(1)] = m.group(1)
    if not any("ld-linux" in p for p in libs):
        raise SystemExit(f"demo_image: ldd {binary} names no dynamic loader")
    return libs


def app_files(app_dir):
    """{/app/relative path: host path}, skipping node_modules/.bin (symlinks to scripts the
    image never runs) and anything that is not a regular file."""
    files = {}
    for root, dirs, names in os.walk(app_dir):
        dirs[:] = sorted(d for d in dirs if not (d == ".bin" and os.path.basename(root) == "node_modules"))
        for name in sorted(names):
            host = os.path.join(root, name)
            if os.path.islink(host) or not os.path.isfile(host):
                continue
            files["/app/" + os.path.relpath(host, app_dir)] = host
    return files


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--node", default="/usr/bin/node")
    p.add_argument("--app", required=True, help="staged demo directory with node_modules")
    p.add_argument("--user", default="65532:65532")
    args = p.parse_args()
    if not os.path.isfile(os.path.join(args.app, "server.mjs")):
        raise SystemExit(f"demo_image: {args.app} has no server.mjs")
    oci = load_oci_pack()
    wanted = {"/usr/bin/node": args.node}
    wanted.update(shared_libraries(args.node))
    wanted.update(app_files(args.app))
    files = {}
    for dest, src in wanted.items():
        with open(src, "rb") as f:
            files[dest.lstrip("/")] = f.read()
    env = ["PATH=/usr/bin", "NODE_ENV=production", "PORT=8080"]
    data = oci.image(files, args.ref, ["/usr/bin/node", "/app/server.mjs"], args.user, env)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    print(f"demo_image: {len(files)} files, {len(data) // (1 << 20)} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
