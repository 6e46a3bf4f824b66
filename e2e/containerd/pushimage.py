#!/usr/bin/env python3
"""Push a one-layer-per-directory image to a plain-HTTP registry.

usage: pushimage.py [--oci] REGISTRY REPO TAG CMD_JSON DIR [DIR...]

Each DIR becomes one gzip tar layer (numeric owners, made by GNU tar), in
order. The manifest is Docker schema2, or OCI with --oci. Used by
scripts/e2e-containerd.sh and scripts/bench-containerd.sh to make source
images without a Docker daemon.
"""
import gzip
import hashlib
import json
import subprocess
import sys
import urllib.request


def put_blob(reg, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    head = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/{digest}", method="HEAD")
    try:
        urllib.request.urlopen(head, timeout=30)
        return digest
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
    start = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    loc = urllib.request.urlopen(start, timeout=30).headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{reg}{loc}"
    sep = "&" if "?" in loc else "?"
    put = urllib.request.Request(f"{loc}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put, timeout=120)
    return digest


DOCKER = {"manifest": "application/vnd.docker.distribution.manifest.v2+json",
          "config": "application/vnd.docker.container.image.v1+json",
          "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
OCI = {"manifest": "application/vnd.oci.image.manifest.v1+json",
       "config": "application/vnd.oci.image.config.v1+json",
       "layer": "application/vnd.oci.image.layer.v1.tar+gzip"}


def main():
    args = sys.argv[1:]
    types = DOCKER
    if args and args[0] == "--oci":
        types, args = OCI, args[1:]
    reg, repo, tag, cmd = args[0:4]
    dirs = args[4:]
    layers, diff_ids = [], []
    for d in dirs:
        tar = subprocess.run(["tar", "--numeric-owner", "--sort=name", "-C", d, "-cf", "-", "."],
                             check=True, stdout=subprocess.PIPE).stdout
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        gz = gzip.compress(tar, compresslevel=6, mtime=0)
        layers.append({"mediaType": types["layer"],
                       "size": len(gz), "digest": put_blob(reg, repo, gz)})
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": json.loads(cmd), "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"],
                   "size": len(config), "digest": put_blob(reg, repo, config)},
        "layers": layers,
    }).encode()
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", method="PUT", data=manifest,
                                 headers={"Content-Type": types["manifest"]})
    urllib.request.urlopen(req, timeout=30)


if __name__ == "__main__":
    main()
