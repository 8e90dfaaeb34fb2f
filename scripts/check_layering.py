#!/usr/bin/env python3
"""Checks the layering of the workspace: which crate may use which, and that no module
imports another that imports it back.

Crates (docs/ARCHITECTURE.md): `toprt-format` and `toprt-kernels` are leaves; the
engine (`toprt`) uses both; `toprt-convert` uses format and kernels, never the engine;
`toprt-calibrate` uses the engine, format and kernels (and the converter's writer);
`toprt-cli` (the `toprt` command) uses the engine, format and kernels, never the
converter or calibrate; bench and tests sit on top.

Modules: every `use` and every `crate::`/`super::`/`self::` path in a crate's sources is
resolved to the file that *defines* the item (following `pub use` re-exports, so a
facade `mod.rs` or `lib.rs` that only re-exports is looked through), giving a graph of
files. Any strongly connected component of more than one file is a cycle, reported
with the references that make it. `mod x;` declarations are not imports. A crate's
`src/main.rs` beside a `src/lib.rs` is a binary that only calls the library, and its
`crate::` names the binary, not the library: it is left out.

Usage: python3 scripts/check_layering.py        (exit 1 on any violation)
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Workspace crates each crate may depend on (normal dependencies).
ALLOWED = {
    "toprt-format": set(),
    "toprt-kernels": set(),
    # The commands' shared command-line helpers (clap only); never the engine's.
    "toprt-args": set(),
    "toprt": {"toprt-format", "toprt-kernels"},
    "toprt-convert": {"toprt-format", "toprt-kernels", "toprt-args"},
    "toprt-calibrate": {"toprt", "toprt-format", "toprt-kernels", "toprt-convert", "toprt-args"},
    "toprt-cli": {"toprt", "toprt-format", "toprt-kernels", "toprt-args"},
}
# Crates whose module graph is checked (the libraries and binaries of the product).
CHECKED = set(ALLOWED)


def crate_violations():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    names = {p["name"] for p in meta["packages"]}
    out, pkgs = [], {}
    for p in meta["packages"]:
        pkgs[p["name"]] = p
        deps = {d["name"] for d in p["dependencies"] if d["name"] in names and d.get("kind") is None}
        if p["name"] in ALLOWED:
            for d in sorted(deps - ALLOWED[p["name"]]):
                out.append(f"crate {p['name']} depends on {d}, which the layering forbids")
    return out, pkgs


def strip_comments(src):
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    # String literals may hold "crate::" in messages.
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', src)


def inline_modules_as_self(src):
    """Inside an inline `mod name { ... }` (unit tests, mostly), `super::` names the file's
    own module: rewrite it as `self::` so the block counts as part of its file."""
    out, i = [], 0
    for m in re.finditer(r"\bmod\s+\w+\s*\{", src):
        if m.start() < i:
            continue
        depth, j = 0, m.end() - 1
        while j < len(src):
            if src[j] == "{":
                depth += 1
            elif src[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(src[i : m.end()])
        out.append(src[m.end() : j].replace("super::", "self::"))
        i = j
    out.append(src[i:])
    return "".join(out)


def module_files(src_dir):
    """Module path (tuple) -> file, for every .rs file under src_dir."""
    mods = {}
    for dirpath, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src_dir)[:-3].split(os.sep)
            if rel[0] == "bin":
                continue
            if rel == ["main"] and os.path.isfile(os.path.join(src_dir, "lib.rs")):
                continue
            if rel[-1] in ("lib", "main") and len(rel) == 1:
                path = ()
            elif rel[-1] == "mod":
                path = tuple(rel[:-1])
            else:
                path = tuple(rel)
            mods[path] = full
    return mods


def expand_use(body):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (aliases dropped)."""
    body = body.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", body, flags=re.S)
    if not m:
        return [re.sub(r"\s+as\s+\w+$", "", body).strip()]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            for e in expand_use(p):
                out.append(prefix + e if e != "self" else prefix.rstrip(":"))
    return out


def analyse(src_dir):
    mods = module_files(src_dir)
    text = {m: inline_modules_as_self(strip_comments(open(f).read())) for m, f in mods.items()}
    defs, reexports, globs, uses = {}, {}, {}, {}
    item_re = re.compile(
        r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+|const\s+|async\s+|extern\s+\"\w*\"\s+)*"
        r"(?:fn|struct|enum|union|type|const|static|trait|macro_rules!)\s+(\w+)",
        re.M,
    )
    for m, src in text.items():
        defs[m] = set(item_re.findall(src))
        defs[m] |= set(re.findall(r"thread_local!\s*\{[^}]*?static\s+(\w+)", src, flags=re.S))
        reexports[m], globs[m], uses[m] = {}, [], []
        alias = {}
        for vis, body in re.findall(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", src):
            for path in expand_use(body):
                alias[path.split("::")[-1]] = path
                if vis:
                    if path.endswith("::*"):
                        globs[m].append(path[:-3])
                    else:
                        reexports[m][path.split("::")[-1]] = path
                uses[m].append(path)
        for p in re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", src):
            uses[m].append(p)
        # Paths through an imported name: `use crate::gemm;` then `gemm::amx::f()`.
        for first, rest in re.findall(r"(?<![:\w])(\w+)((?:::\w+)+)", src):
            if first in alias and first not in ("crate", "super", "self"):
                uses[m].append(alias[first] + rest)

    def absolute(m, path):
        segs = path.split("::")
        if segs[0] == "crate":
            return list(segs[1:])
        base = list(m)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        return base + segs

    def resolve(segs, depth=0):
        """The module that defines the item at absolute path `segs`, or None if it is
        outside the crate."""
        if depth > 20:
            return None
        k = len(segs)
        while k > 0 and tuple(segs[:k]) not in mods:
            k -= 1
        mod = tuple(segs[:k])
        if k == 0 and segs and segs[0] not in defs[()] and segs[0] not in reexports[()] and not globs[()]:
            return None  # an extern crate (std, serde, toprt_kernels, ...)
        rest = segs[k:]
        if not rest:
            return mod
        name = rest[0]
        if name in defs[mod]:
            return mod
        if name in reexports[mod]:
            return resolve(absolute(mod, reexports[mod][name]) + rest[1:], depth + 1)
        for g in globs[mod]:
            target = resolve(absolute(mod, g), depth + 1)
            if target is not None and (name in defs.get(target, ()) or name in reexports.get(target, {})):
                return resolve(list(target) + rest, depth + 1)
        return mod

    edges = {m: {} for m in mods}
    for m in mods:
        for path in uses[m]:
            segs = absolute(m, path)
            if segs and segs[-1] == "*":
                segs = segs[:-1]
            t = resolve(segs)
            if t is not None and t != m and t in mods:
                edges[m].setdefault(t, path)
    return mods, edges


def cycles(mods, edges):
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            strong(v)
    return out


def main():
    problems, pkgs = crate_violations()
    checked = 0
    for name, p in sorted(pkgs.items()):
        if name not in CHECKED:
            continue
        src_dir = os.path.join(os.path.dirname(p["manifest_path"]), "src")
        mods, edges = analyse(src_dir)
        checked += len(mods)
        for comp in cycles(mods, edges):
            rel = lambda m: os.path.relpath(mods[m], ROOT)
            refs = [f"{rel(a)} -> {rel(b)} ({edges[a][b]})" for a in comp for b in edges[a] if b in comp]
            problems.append(f"module cycle in {name}: " + "; ".join(sorted(refs)))
    for line in problems:
        print("layering:", line)
    print(f"layering: {len(pkgs)} crates, {checked} module files checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
