#!/usr/bin/env python3
"""Fails when the workspace's `rust-version` is lower than what its published crates' dependencies
need.

Reads `cargo metadata --format-version 1 --all-features` and walks the dependency graph of every
crate that can be published (no `publish = false`) over normal and build dependencies (dev
dependencies are not built by users), on every target platform. Each crate reached that declares a
`rust-version` higher than the workspace's is printed with the path that pulls it in; the exit
status is 1 if there is any. Crates without a `rust-version` say nothing and pass.

    python3 scripts/check-rust-version.py
"""

import json
import subprocess
import sys


def version_tuple(text):
    """`1.88` or `1.88.0` as (1, 88, 0)."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out)
    packages = {p["id"]: p for p in meta["packages"]}
    members = [packages[m] for m in meta["workspace_members"]]
    published = [p for p in members if p.get("publish") != []]
    if not published:
        sys.exit("check-rust-version: no publishable crate in the workspace")

    declared = {p["rust_version"] for p in published}
    if None in declared or len(declared) != 1:
        sys.exit(f"check-rust-version: published crates must share one rust-version, found {declared}")
    msrv = declared.pop()

    edges = {}
    for node in meta["resolve"]["nodes"]:
        edges[node["id"]] = [
            dep["pkg"]
            for dep in node["deps"]
            if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"])
        ]

    # Breadth first, remembering who pulled each crate in, for the report.
    parent = {p["id"]: None for p in published}
    queue = [p["id"] for p in published]
    while queue:
        current = queue.pop(0)
        for dep in edges.get(current, []):
            if dep not in parent:
                parent[dep] = current
                queue.append(dep)

    def path(pkg_id):
        chain = []
        while pkg_id is not None:
            chain.append(packages[pkg_id]["name"])
            pkg_id = parent[pkg_id]
        return " <- ".join(chain)

    too_new = []
    highest = ("(none)", (0, 0, 0))
    member_ids = set(meta["workspace_members"])
    for pkg_id in parent:
        needs = packages[pkg_id].get("rust_version")
        if needs is None or pkg_id in member_ids:
            continue
        if version_tuple(needs) > highest[1]:
            highest = (f"{packages[pkg_id]['name']} {needs}", version_tuple(needs))
        if version_tuple(needs) > version_tuple(msrv):
            too_new.append((version_tuple(needs), needs, path(pkg_id)))

    print(
        f"rust-version {msrv}: {len(parent)} crates in the graph of "
        f"{', '.join(p['name'] for p in published)}; highest rust-version of a dependency: {highest[0]}"
    )
    if too_new:
        print(f"these need a newer Rust than the workspace's rust-version {msrv}:")
        for _, needs, chain in sorted(too_new, reverse=True):
            print(f"  rust-version {needs}: {chain}")
        sys.exit(1)


if __name__ == "__main__":
    main()
