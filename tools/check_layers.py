#!/usr/bin/env python3
"""Layering check (architecture §1.2): a library may include and link only the libraries
src/LAYERS allows. Fails, naming file and line, on any include of another
module's header or any DEPS entry that the table does not allow.

usage: check_layers.py SOURCE_DIR      check the tree
       check_layers.py --self-test     prove the checker catches a violation
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([a-z_]+)/')
DEPS = re.compile(r'\bDEPS\b([^)]*)')


def load_layers(src):
    allowed = {}
    with open(os.path.join(src, "LAYERS")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mod, _, deps = line.partition(":")
            allowed[mod.strip()] = set(deps.split())
    return allowed


def check(root):
    src = os.path.join(root, "src")
    allowed = load_layers(src)
    errors = []
    for mod in sorted(allowed):
        mdir = os.path.join(src, mod)
        if not os.path.isdir(mdir):
            continue
        for dirpath, _, files in os.walk(mdir):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if name == "CMakeLists.txt":
                    text = open(path).read()
                    for m in DEPS.finditer(text):
                        for dep in m.group(1).split():
                            if dep in allowed and dep != mod and dep not in allowed[mod]:
                                errors.append(f"{rel}: gpunet_{mod} links gpunet_{dep}, which src/LAYERS does not allow")
                    continue
                if not name.endswith((".h", ".hpp", ".cpp", ".cc")):
                    continue
                with open(path, errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        dep = m.group(1)
                        if dep in allowed and dep != mod and dep not in allowed[mod]:
                            errors.append(f"{rel}:{lineno}: {mod} includes {dep}/ which src/LAYERS does not allow")
    return errors


def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "src", "base"))
        os.makedirs(os.path.join(d, "src", "crypto"))
        with open(os.path.join(d, "src", "LAYERS"), "w") as f:
            f.write("base:\ncrypto: base\n")
        with open(os.path.join(d, "src", "crypto", "ok.cpp"), "w") as f:
            f.write('#include "base/result.h"\n')
        assert check(d) == [], "clean tree flagged"
        with open(os.path.join(d, "src", "base", "bad.cpp"), "w") as f:
            f.write('#include "crypto/hash.h"\n')
        with open(os.path.join(d, "src", "base", "CMakeLists.txt"), "w") as f:
            f.write("gpunet_add_library(base SOURCES bad.cpp DEPS crypto)\n")
        errs = check(d)
        assert len(errs) == 2, errs
    print("self-test: violations detected")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        self_test()
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    self_test()
    errors = check(root)
    for e in errors:
        print("layering violation:", e)
    if errors:
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
