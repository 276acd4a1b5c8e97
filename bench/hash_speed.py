"""Hashing throughput: raw hashes on one core, against localpipe's `hash_tree` on a 1 GiB tree.

The tree is 1,000 files of 1 MiB of random bytes (``os.urandom``), 10 folders of 100, written
once per run into a temp folder. The same 1,000 buffers are also kept in memory, so that:

(a) the raw single-thread throughput of each hash is measured on exactly those bytes, one
    digest per 1 MiB buffer as the tree has one per file: BLAKE3 (``blake3.blake3(data).digest()``,
    ``max_threads`` left at 1), xxh3-128 (``xxhash``, only if installed: it is not a localpipe
    dependency) and SHA-256 (``hashlib``); BLAKE3 is also timed reading each file (``read``, as
    ``hash_file`` does, and ``update_mmap``, which it no longer does: a mapped file truncated
    while it is hashed kills the process with SIGBUS);
(b) a cold ``hash_tree(root, ignore=False)`` (no stat cache, so every file is read and hashed)
    is timed and compared with BLAKE3's raw in-memory figure.

The files are in the page cache (they were just written; dropping it needs root and would
measure the disk): (b) measures walking and hashing, not reading a disk.

GB here is 10^9 bytes. Each figure is the median of ``--repeats`` rounds (the rounds interleave
the methods, so a change in the machine's load touches them all alike).

Target: ``hash_tree`` >= 70 % of BLAKE3's raw single-thread throughput.

    python bench/hash_speed.py [--files 1000] [--repeats 3] [--keep]
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3
from _common import base_parser, machine, temp_folder

from localpipe.content.hashing import hash_tree

TARGET_RATIO = 0.70
FILE_SIZE = 1 << 20
PER_FOLDER = 100

try:
    import xxhash
except ImportError:
    xxhash = None


def make_tree(root: Path, files: int) -> tuple[list[bytes], list[Path]]:
    """Write ``files`` files of 1 MiB of random bytes under ``root``; returns the buffers and the paths."""
    buffers, paths = [], []
    for i in range(files):
        folder = root / f"d{i // PER_FOLDER:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = os.urandom(FILE_SIZE)
        path = folder / f"f{i:04d}.bin"
        path.write_bytes(data)
        buffers.append(data)
        paths.append(path)
    return buffers, paths


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files of 1 MiB (default 1000: 1 GiB)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"hash_speed: on {machine()}")
    print(
        f"blake3 {blake3.__version__}, xxhash {xxhash.VERSION if xxhash else 'not installed'}, "
        f"{hashlib.sha256().name} from hashlib ({'OpenSSL ' + __import__('ssl').OPENSSL_VERSION.split()[1]})"
    )

    with temp_folder("hash", keep=args.keep) as folder:
        root = folder / "tree"
        started = time.perf_counter()
        buffers, paths = make_tree(root, args.files)
        total = sum(map(len, buffers))
        print(
            f"tree: {args.files} files of 1 MiB ({total / 2**30:.2f} GiB, {total / 1e9:.3f} GB), "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        print(
            "note: the files are in the page cache (just written), so the tree figures measure "
            "walking and hashing, not reading a disk"
        )

        # A check that the figures are about the same bytes: hash_tree's entry for a file is its
        # BLAKE3 digest (plus "+x" for an executable), which must be that of the buffer in memory.
        tree = hash_tree(root, ignore=False)
        rel = paths[0].relative_to(root).as_posix()
        if (
            len(tree.files) != args.files
            or tree.size != total
            or tree.files[rel] != blake3.blake3(buffers[0]).hexdigest()
        ):
            sys.exit("bench: hash_tree did not see the tree that was written")

        methods: dict[str, Callable[[], object]] = {
            "blake3, in memory": lambda: [blake3.blake3(b).digest() for b in buffers],
            "blake3, read + hash per file": lambda: [blake3.blake3(p.read_bytes()).digest() for p in paths],
            "blake3, update_mmap per file": lambda: [blake3.blake3().update_mmap(p).digest() for p in paths],
        }
        if xxhash is not None:
            methods["xxh3-128, in memory"] = lambda: [xxhash.xxh3_128(b).digest() for b in buffers]
        methods["sha256, in memory"] = lambda: [hashlib.sha256(b).digest() for b in buffers]
        methods["hash_tree(root, ignore=False), cold"] = lambda: hash_tree(root, ignore=False)

        samples: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, work in methods.items():
                samples[name].append(timed(work))

        print(f"\nthroughput, single thread, median of {args.repeats} (GB/s; best in brackets):")
        if xxhash is None:
            print("    xxh3-128: xxhash not installed (pip install xxhash for the comparison)")
        rates = {name: total / statistics.median(s) / 1e9 for name, s in samples.items()}
        best = {name: total / min(s) / 1e9 for name, s in samples.items()}
        for name in methods:
            print(
                f"    {name:40s} {rates[name]:6.2f} GB/s  ({best[name]:.2f})   "
                f"seconds: {', '.join(f'{s:.3f}' for s in samples[name])}"
            )

        tree_name, raw_name = "hash_tree(root, ignore=False), cold", "blake3, in memory"
        ratio = rates[tree_name] / rates[raw_name]
        print(
            f"\nhash_tree: {rates[tree_name]:.2f} GB/s = {ratio:.0%} of blake3's raw single-thread "
            f"{rates[raw_name]:.2f} GB/s (best against best: {best[tree_name] / best[raw_name]:.0%})"
            f"  (target >= {TARGET_RATIO:.0%}: {'met' if ratio >= TARGET_RATIO else 'MISSED'})"
        )
        print(
            f"    beside it: blake3 read + hash {rates['blake3, read + hash per file'] / rates[raw_name]:.0%}, "
            f"update_mmap {rates['blake3, update_mmap per file'] / rates[raw_name]:.0%} of the in-memory figure"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
