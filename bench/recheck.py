"""Re-checking an unchanged 10,000-file source tree: from the stat cache, and with a watcher's knowledge.

The tree: 100 folders of 100 files of 1 KiB (random bytes), a ``.gitignore`` at its root, and an
ignored ``build/`` folder of 100 files that must not be hashed. Every file's mtime is set 10 s
into the past first: a file modified within ``RACY_SECONDS`` (2 s) of hashing is "racily clean"
and never enters the stat cache, so a freshly written tree would be hashed in full every time.

(a) Without a watcher, as a fresh `localpipe` process does it: the stat cache
    (``.localpipe/statcache.bin``) was filled by an earlier ``hash_tree`` and saved; each repeat
    constructs a new ``StatCache`` from that file (the load) and calls
    ``hash_tree(root, stat_cache=cache)``. Reported with and without the load; every file must
    come from the cache (the figure is refused otherwise). Target: < 150 ms (median of 10),
    met when the figure with the load is.
(b) With the watcher's knowledge: a ``TreeCache`` (with a loaded stat cache, as ``Watcher``
    builds it) that has hashed the tree once; each repeat edits one file (a different one each
    time, new content; the write is not timed), then times ``trees.changed(path)`` +
    ``trees.tree(root)``. Target: < 20 ms (median of 10).

For the record it also times what the figures are made of: the walk alone (with and without
the ignore rules), a hash of the whole tree with no stat cache, and ``tree_digest`` over the
tree's entries. ``--profile`` prints a cProfile of one re-check of each kind.

    python bench/recheck.py [--folders 100] [--per-folder 100] [--repeats 10] [--profile] [--keep]
"""

from __future__ import annotations

import cProfile
import os
import statistics
import sys
import time
from pathlib import Path

import blake3
from _common import base_parser, machine, print_profile, report_ms, temp_folder

from localpipe.content.hashing import hash_tree, tree_digest, walk
from localpipe.content.statcache import StatCache
from localpipe.content.trees import TreeCache

TARGET_STATCACHE_MS = 150
TARGET_WATCHER_MS = 20
FILE_SIZE = 1024
GITIGNORE = "*.log\nbuild/\n.venv/\n"
AGE_SECONDS = 10


def make_tree(root: Path, folders: int, per_folder: int) -> list[Path]:
    """Write the tree; returns the paths of the files that count (those not ignored)."""
    paths = []
    for i in range(folders):
        folder = root / f"pkg{i:03d}"
        folder.mkdir(parents=True)
        for j in range(per_folder):
            path = folder / f"mod{j:03d}.py"
            path.write_bytes(os.urandom(FILE_SIZE))
            paths.append(path)
    (root / ".gitignore").write_text(GITIGNORE)
    paths.append(root / ".gitignore")
    (root / "build").mkdir()
    for j in range(100):
        (root / "build" / f"out{j:03d}.o").write_bytes(os.urandom(FILE_SIZE))
    past = time.time() - AGE_SECONDS
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (past, past))
    return paths


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--per-folder", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="Also print a cProfile of one re-check of each kind.")
    args = parser.parse_args()
    print(f"recheck: on {machine()}")

    with temp_folder("recheck", keep=args.keep) as folder:
        root = folder / "project"
        db = folder / "statcache.bin"
        started = time.perf_counter()
        paths = make_tree(root, args.folders, args.per_folder)
        print(
            f"tree: {args.folders} folders x {args.per_folder} files of {FILE_SIZE} B + .gitignore "
            f"({len(paths)} files hashed) + build/ (100 files, ignored); mtimes {AGE_SECONDS} s in the past; "
            f"written in {time.perf_counter() - started:.1f} s"
        )

        # The earlier run that fills the stat cache.
        cache = StatCache(db)
        fill_seconds, first = timed(lambda: hash_tree(root, stat_cache=cache))
        cache.save()
        if len(first.files) != len(paths) or any(k.startswith("build/") for k in first.files):
            sys.exit(f"bench: hash_tree saw {len(first.files)} files, expected {len(paths)} (build/ ignored)")
        if len(StatCache(db)._entries) < len(paths):
            sys.exit("bench: the stat cache was not filled (are the files racily clean?)")
        print(
            f"filling run (every file read and hashed, stat cache written): {fill_seconds * 1000:.1f} ms; "
            f"statcache.bin {sum(f.stat().st_size for f in folder.glob('statcache.bin*')) // 1024} KiB"
        )

        # (a) a fresh process's re-check: load the stat cache, then hash the tree from it.
        with_load, without_load, loads = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            cache = StatCache(db)
            t1 = time.perf_counter()
            again = hash_tree(root, stat_cache=cache)
            t2 = time.perf_counter()
            if again.digest != first.digest or cache._new:
                sys.exit(f"bench: the re-check hashed {len(cache._new)} files again or got another digest")
            with_load.append(t2 - t0)
            without_load.append(t2 - t1)
            loads.append(t1 - t0)

        print(
            "\n(a) without a watcher: hash_tree(root, stat_cache=StatCache(path)) of the unchanged tree "
            "(every file from the cache)"
        )
        report_ms("    load + re-check (a fresh process)", with_load, TARGET_STATCACHE_MS)
        report_ms("    re-check alone (cache already loaded)", without_load, TARGET_STATCACHE_MS)
        report_ms("    of which StatCache load", loads)

        # What (a) is made of.
        walk_ignore = [timed(lambda: walk(root))[0] for _ in range(args.repeats)]
        walk_plain = [timed(lambda: walk(root, ignore=False))[0] for _ in range(args.repeats)]
        no_cache = [timed(lambda: hash_tree(root))[0] for _ in range(3)]
        digest_only = [timed(lambda: tree_digest(first.files))[0] for _ in range(args.repeats)]
        print("  for comparison:")
        report_ms("    walk(root) alone (ignore rules on)", walk_ignore)
        report_ms("    walk(root, ignore=False) alone", walk_plain)
        report_ms("    hash_tree(root) with no stat cache (every file read)", no_cache)
        report_ms(f"    tree_digest over {len(first.files)} entries", digest_only)

        # (b) a watcher's re-check: one file changed, the rest known.
        trees = TreeCache(StatCache(db))
        seed_seconds, seeded = timed(lambda: trees.tree(str(root)))
        if seeded.digest != first.digest:
            sys.exit("bench: the TreeCache's first digest differs from hash_tree's")
        incremental, changed_only = [], []
        previous = seeded.digest
        for i in range(args.repeats):
            path = paths[(i * 1013) % (len(paths) - 1)]  # spread over the folders; never .gitignore
            content = os.urandom(FILE_SIZE)
            path.write_bytes(content)
            t0 = time.perf_counter()
            roots = trees.changed(str(path))
            t1 = time.perf_counter()
            now = trees.tree(str(root))
            t2 = time.perf_counter()
            rel = path.relative_to(root).as_posix()
            if roots != [str(root)] or now.files[rel] != blake3.blake3(content).hexdigest() or now.digest == previous:
                sys.exit(f"bench: the TreeCache did not pick up the edit of {rel}")
            previous = now.digest
            incremental.append(t2 - t0)
            changed_only.append(t1 - t0)
        if hash_tree(root).digest != previous:
            sys.exit("bench: the TreeCache's digest after the edits differs from a full hash_tree")

        print(
            f"\n(b) with the watcher's knowledge: TreeCache (first trees.tree: {seed_seconds * 1000:.1f} ms, "
            f"from the stat cache), then per repeat one file edited"
        )
        report_ms("    trees.changed(path) + trees.tree(root)", incremental, TARGET_WATCHER_MS)
        report_ms("    of which trees.changed(path)", changed_only)

        if args.profile:
            for label, work in (
                ("(a) StatCache load + hash_tree", lambda: hash_tree(root, stat_cache=StatCache(db))),
                ("(b) trees.changed + trees.tree", lambda: (trees.changed(str(paths[0])), trees.tree(str(root)))),
            ):
                paths[0].write_bytes(os.urandom(FILE_SIZE))
                profiler = cProfile.Profile()
                profiler.runcall(work)
                stats = folder / "profile.stats"
                profiler.dump_stats(stats)
                print(f"\nprofile of one {label}:")
                print_profile(stats, top=12)
        print(
            f"\nmedians: (a) {statistics.median(with_load) * 1000:.1f} ms with the load, "
            f"{statistics.median(without_load) * 1000:.1f} ms without (target < {TARGET_STATCACHE_MS} ms: "
            f"{'met' if statistics.median(with_load) * 1000 < TARGET_STATCACHE_MS else 'MISSED'}); "
            f"(b) {statistics.median(incremental) * 1000:.1f} ms (target < {TARGET_WATCHER_MS} ms: "
            f"{'met' if statistics.median(incremental) * 1000 < TARGET_WATCHER_MS else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
