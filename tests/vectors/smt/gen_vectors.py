#!/usr/bin/env python3
"""Golden vectors of the state tree, from an independent reference implementation.

This file is written from the definition in docs/state-tree.md, not from the C++
code: it shares nothing with src/state/smt.cpp but the specification. The C++ test
tests/unit/state/smt_test.cpp (SmtVectors.*) rebuilds every case and compares.

    python3 tests/vectors/smt/gen_vectors.py tests/vectors/smt

rewrites roots.txt and proofs.txt. A change of either file is a change of the
protocol: say so in the commit message.
"""
import hashlib
import os
import sys

EMPTY = bytes(32)


def H(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def bit(key_hash: bytes, depth: int) -> int:
    return (key_hash[depth // 8] >> (7 - depth % 8)) & 1


def leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return H(b"\x00" + key_hash + value_hash)


def inner_hash(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def root(leaves, depth=0):
    """leaves: list of (key_hash, value_hash) with distinct key hashes."""
    if not leaves:
        return EMPTY
    if len(leaves) == 1:
        return leaf_hash(*leaves[0])
    left = [l for l in leaves if bit(l[0], depth) == 0]
    right = [l for l in leaves if bit(l[0], depth) == 1]
    return inner_hash(root(left, depth + 1), root(right, depth + 1))


def prove(leaves, key_hash):
    """(siblings bottom-up, end leaf or None)."""
    siblings, depth, here = [], 0, leaves
    while len(here) >= 2:
        b = bit(key_hash, depth)
        siblings.append(root([l for l in here if bit(l[0], depth) != b], depth + 1))
        here = [l for l in here if bit(l[0], depth) == b]
        depth += 1
    siblings.reverse()
    return siblings, (here[0] if here else None)


def leb128(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(siblings, end) -> bytes:
    out = (b"\x01" + end[0] + end[1]) if end else b"\x00"
    return out + leb128(len(siblings)) + b"".join(siblings)


def verify(root_hash, key_hash, siblings, end):
    """What the proof shows: value_hash, None (absent), or raises ValueError."""
    n = len(siblings)
    if n > 256:
        raise ValueError("too many siblings")
    if end and any(bit(end[0], d) != bit(key_hash, d) for d in range(n)):
        raise ValueError("end leaf not on the key's path")
    node = leaf_hash(*end) if end else EMPTY
    for i, s in enumerate(siblings):
        node = inner_hash(s, node) if bit(key_hash, n - 1 - i) else inner_hash(node, s)
    if node != root_hash:
        raise ValueError("proof does not lead to the root")
    return end[1] if end and end[0] == key_hash else None


def rule_leaves(count):
    """The 'rule smt-vector N' key set: i = 0..N-1, decimal i in ASCII."""
    return [(H(b"smt-vector-key-%d" % i), H(b"smt-vector-value-%d" % i)) for i in range(count)]


def k(hex_str):
    b = bytes.fromhex(hex_str)
    assert len(b) == 32
    return b


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    v = lambda s: H(s.encode())
    cases = [
        ("empty", [], None),
        ("one_key", [(H(b"account/alice"), H(b"100"))], None),
        ("two_keys_bit0", [(k("00" * 32), v("left")), (k("80" + "00" * 31), v("right"))], None),
        ("long_prefix",
         [(k("00" * 32), v("a")), (k("00" * 31 + "01"), v("b")),
          (k("00" * 25 + "80" + "00" * 6), v("c")), (k("ff" * 32), v("d"))], None),
        ("thousand", rule_leaves(1000), "rule smt-vector 1000"),
    ]
    probes = {
        "empty": [H(b"account/alice")],
        "one_key": [H(b"account/alice"), H(b"account/bob")],
        "two_keys_bit0": [k("00" * 32), k("80" + "00" * 31), k("40" + "00" * 31)],
        "long_prefix": [k("00" * 31 + "01"), k("00" * 25 + "80" + "00" * 6), k("00" * 31 + "02"),
                        k("00" * 25 + "c0" + "00" * 6), k("7f" + "00" * 31)],
        "thousand": [H(b"smt-vector-key-0"), H(b"smt-vector-key-999"), H(b"smt-vector-key-1000"),
                     H(b"smt-vector-key-1001"), H(b"smt-vector-key-1002")],
    }
    with open(os.path.join(outdir, "roots.txt"), "w") as f:
        f.write("# State-tree roots (docs/state-tree.md). Produced by gen_vectors.py; never edit by hand.\n")
        f.write("# case <name> / leaf <key_hash> <value_hash> | rule smt-vector <N> / root <hash>\n")
        for name, leaves, rule in cases:
            f.write("case %s\n" % name)
            if rule:
                f.write(rule + "\n")
            else:
                for kh, vh in leaves:
                    f.write("leaf %s %s\n" % (kh.hex(), vh.hex()))
            f.write("root %s\n" % root(leaves).hex())
    with open(os.path.join(outdir, "proofs.txt"), "w") as f:
        f.write("# State-tree proofs (docs/state-tree.md). Produced by gen_vectors.py; never edit by hand.\n")
        f.write("# proof <case> <key_hash> <value_hash | absent> <canonical proof encoding>\n")
        for name, leaves, _ in cases:
            r = root(leaves)
            for key_hash in probes[name]:
                siblings, end = prove(leaves, key_hash)
                shown = verify(r, key_hash, siblings, end)
                expect = dict(leaves).get(key_hash)
                assert shown == expect, (name, key_hash.hex())
                f.write("proof %s %s %s %s\n" % (name, key_hash.hex(), shown.hex() if shown else "absent",
                                                 encode(siblings, end).hex()))


if __name__ == "__main__":
    main()
