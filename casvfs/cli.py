"""The casvfs command: a local store by default, no server needed.

Each verb parses its arguments, calls the library and prints; errors print one
line and exit 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from importlib import metadata
from typing import Any, BinaryIO

from tqdm import tqdm

from casvfs.atomic import atomic_output
from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.directory.changes import diff
from casvfs.directory.ingest import import_host_tree
from casvfs.directory.types import FileStat, FileType
from casvfs.errors import (
    REASON_BLOB_MISSING,
    REASON_NOT_EMPTY,
    REASON_REF_NOT_FOUND,
    CasvfsError,
    DirectoryError,
    RefError,
)
from casvfs.refs import Kind, Ref, RefIndex, make_qualifiers, parse_duration, parse_qualifier, utc_now
from casvfs.store import ContentStore, DigestOnlyStore, expanded_size, parse_size
from casvfs.stores import StoreSpec, default_config_file, default_store_dir

log = logging.getLogger("casvfs")


def _shows_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


class _Bar:
    """A progress bar on stderr (tqdm): only on a terminal, not with ``-q``, and
    only once an operation has taken more than a moment. Called as a casvfs
    progress callback, ``bar(items, bytes)``."""

    DELAY = 0.5

    def __init__(self, args: argparse.Namespace, verb: str, *, total: int | None = None) -> None:
        self._bar = tqdm(
            total=total,
            desc=verb,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            delay=self.DELAY,
            leave=False,
            file=sys.stderr,
            disable=not _shows_progress(args),
        )

    def __call__(self, items: int, size: int) -> None:
        self._bar.set_postfix_str(f"{items} files", refresh=False)
        self._bar.update(size - self._bar.n)

    @property
    def total(self) -> float | None:
        """The bar's total, if known."""
        total: float | None = self._bar.total
        return total

    def set_total(self, items: int, size: int) -> None:
        """Give the bar its total once it is known (``items`` are not shown)."""
        del items
        self._bar.reset(total=size)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _spec(args: argparse.Namespace) -> StoreSpec:
    return StoreSpec(
        args.store,
        remotes=tuple(args.remote),
        instance_name=args.instance_name,
        config=args.config,
        project_config=args.project_config,
    )


def _digest(args: argparse.Namespace, text: str) -> Digest:
    """A DIGEST argument: ``HASH/SIZE``, or the name of a directory reference."""
    return _refs(args).resolve(text)


def _refs(args: argparse.Namespace) -> RefIndex:
    return RefIndex.of_store(_spec(args).open_local())


def _tree(args: argparse.Namespace) -> CasDirectory:
    return CasDirectory(_spec(args).open(), _digest(args, args.digest))


def _inside(path: str) -> str:
    """*path*, refused if it climbs above the root of the tree with ``..``."""
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{path!r} goes above the root of the tree")
        elif part not in ("", "."):
            depth += 1
    return path


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _patterns(args: argparse.Namespace) -> list[str]:
    patterns = list(args.exclude or ())
    for name in args.exclude_from or ():
        try:
            with open(name, encoding="utf-8") as stream:
                lines = [line.strip() for line in stream]
        except OSError as error:
            raise ValueError(f"cannot read {name}: {error.strerror}") from None
        patterns += [line for line in lines if line and not line.startswith("#")]
    return patterns


def _no_verb(args: argparse.Namespace) -> None:
    raise AssertionError(f"argparse requires an action after {args.command}")


def _cmd_import(args: argparse.Namespace) -> None:
    # --digest-only hashes without writing: nothing reaches the store
    target: ContentStore = DigestOnlyStore() if args.digest_only else _spec(args).open()
    skipped: dict[str, list[str]] = {}
    with _Bar(args, "hashing" if args.digest_only else "importing") as bar:
        digest = import_host_tree(
            target,
            args.path,
            properties=args.property,
            progress=bar,
            skipped=skipped,
            exclude=_patterns(args),
        )
    left_out = [prefix + name for prefix, names in sorted(skipped.items()) for name in names]
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        log.warning("left out %d special file(s) (FIFOs, sockets, devices): %s", len(left_out), shown)
    if args.json:
        _print_json({"digest": str(digest), "hash": digest.hash, "size_bytes": digest.size_bytes,
                     "left_out": left_out})  # fmt: skip
    else:
        print(digest)


def _entry(tree: CasDirectory, path: str, name: str, stat: FileStat) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": name, "type": stat.file_type.name.lower()}
    if stat.file_type is FileType.SYMLINK:
        entry["target"] = tree.readlink(path)
    elif stat.file_type is FileType.REGULAR_FILE:
        entry.update(size=stat.size, executable=stat.executable, digest=tree.file_digest(path))
    return entry


def _line(entry: dict[str, Any], long: bool) -> str:
    if not long:
        return str(entry["path"])
    if entry["type"] == "directory":
        return f"d          - {entry['path']}/"
    if entry["type"] == "symlink":
        return f"l          - {entry['path']} -> {entry['target']}"
    kind = "x" if entry["executable"] else "-"
    return f"{kind} {entry['size']:>10} {entry['path']}  {entry['digest']}"


def _cmd_ls(args: argparse.Namespace) -> None:
    root = _tree(args)
    path = _inside(args.path)
    stat = root.stat(path, follow_symlinks=True) if path.strip("/.") else None
    if stat is not None and stat.file_type is not FileType.DIRECTORY:
        entries: Iterator[dict[str, Any]] = iter([_entry(root, path, args.path, stat)])
    else:
        tree = root.open_directory(path, follow_symlinks=True)
        assert isinstance(tree, CasDirectory)
        names = tree.list_relative_paths() if args.recursive else iter(tree)
        # streamed: a tree that shares subtrees may name far more paths than fit in memory
        entries = (_entry(tree, name, name, tree.stat(name)) for name in names)
    if args.json:
        _print_json(list(entries))
        return
    for entry in entries:
        print(_line(entry, args.long))


def _cmd_cat(args: argparse.Namespace) -> None:
    with _tree(args).open_file(_inside(args.path), mode="rb") as stream:
        while chunk := stream.read(1 << 20):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _size(text: str) -> int:
    """:func:`casvfs.store.parse_size` as an argparse type."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _total(args: argparse.Namespace, tree: CasDirectory) -> int | None:
    """The bytes a tree expands to, for a progress bar's total (only when one shows)."""
    return expanded_size(tree.store, tree.get_digest()).bytes if _shows_progress(args) else None


def _cmd_export(args: argparse.Namespace) -> None:
    target = args.directory
    if not args.merge and os.path.isdir(target) and os.listdir(target):
        raise DirectoryError(
            f"{target} is not empty (use --merge to merge the tree into it)", reason=REASON_NOT_EMPTY
        )
    tree = _tree(args)
    with _Bar(args, "exporting", total=_total(args, tree)) as bar:
        tree.export_files(
            target,
            can_link=args.link or args.hardlink,
            hard_links=args.hardlink,
            progress=bar,
            max_size=args.max_size,
            special_modes=args.special_modes,
        )


class _Counting:
    """A binary sink counting what passes, for the progress bar of ``tar``."""

    def __init__(self, sink: BinaryIO, progress: Callable[[int, int], None]) -> None:
        self._sink = sink
        self._progress = progress
        self._written = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self._written += len(data)
        self._progress(0, self._written)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()


def _cmd_tar(args: argparse.Namespace) -> None:
    tree = _tree(args)
    with _Bar(args, "archiving", total=_total(args, tree)) as bar:
        if args.file == "-":
            with tarfile.open(fileobj=_Counting(sys.stdout.buffer, bar), mode="w|") as archive:  # type: ignore[call-overload]
                tree.export_to_tar(archive, "", max_size=args.max_size)
            return
        # written under a temporary name: an interrupted tar leaves no partial archive
        with (
            atomic_output(args.file, kind=DirectoryError) as sink,
            tarfile.open(fileobj=_Counting(sink, bar), mode="w|") as archive,  # type: ignore[call-overload]
        ):
            tree.export_to_tar(archive, "", max_size=args.max_size)


def _cmd_du(args: argparse.Namespace) -> None:
    tree = _tree(args).open_directory(_inside(args.path), follow_symlinks=True)
    assert isinstance(tree, CasDirectory)
    size = expanded_size(tree.store, tree.get_digest())
    if args.json:
        _print_json(asdict(size))
    else:
        counts = f"{size.files} files, {size.directories} directories, {size.symlinks} symlinks"
        print(f"{size.bytes} bytes in {counts}")


def _cmd_diff(args: argparse.Namespace) -> None:
    store = _spec(args).open()
    changes = diff(CasDirectory(store, _digest(args, args.a)), CasDirectory(store, _digest(args, args.b)))
    if args.json:
        _print_json(
            {
                "added": changes.added,
                "removed": changes.removed,
                "modified": [{"path": path, "change": changes.kinds[path]} for path in changes.modified],
            }
        )
    else:
        lines = [(path, "+", "") for path in changes.added]
        lines += [(path, "-", "") for path in changes.removed]
        lines += [(path, "M", changes.kinds[path]) for path in changes.modified]
        for path, mark, kind in sorted(lines):
            print(f"{mark} {path}" + (f"  ({kind})" if kind and args.long else ""))
    if changes:
        raise SystemExit(1)


def _cmd_fsck(args: argparse.Namespace) -> None:
    if args.digests:
        _check_trees(args)
        return
    bar = _Bar(args, "checking")

    def progress(done: int, size: int, total: int, total_size: int) -> None:
        if bar.total != total_size:
            bar.set_total(total, total_size)
        bar(done, size)

    with bar:
        report = _spec(args).open_local().fsck(repair=args.repair, progress=progress)
    if args.json:
        _print_json(asdict(report))
    else:
        for path in report.corrupt:
            print(f"corrupt: {path}")
        for path in report.removed:
            print(f"removed: {path}")
        if report.quarantined:
            print(f"quarantined: {len(report.quarantined)} objects in quarantine/")
        print(f"checked {report.checked} objects, {len(report.corrupt)} corrupt")
    if report.corrupt and not args.repair:
        raise SystemExit(1)


def _check_trees(args: argparse.Namespace) -> None:
    store = _spec(args).open_local()
    checks = {}
    for text in args.digests:
        with _Bar(args, "checking") as bar:
            checks[text] = store.check_tree(_digest(args, text), progress=bar)
    if args.json:
        _print_json(
            {
                text: {
                    "directories": check.directories,
                    "files": check.files,
                    "missing": [str(digest) for digest in check.missing],
                    "corrupt": [str(digest) for digest in check.corrupt],
                }
                for text, check in checks.items()
            }
        )
    else:
        for text, check in checks.items():
            for digest in check.missing:
                print(f"missing: {digest}")
            for digest in check.corrupt:
                print(f"corrupt: {digest} (quarantined)")
            problems = f"{len(check.missing)} missing, {len(check.corrupt)} corrupt"
            state = "complete" if check.complete else problems
            print(f"{text}: {check.directories} directories, {check.files} files checked, {state}")
    if not all(check.complete for check in checks.values()):
        raise SystemExit(1)


def _cmd_push(args: argparse.Namespace) -> None:
    store = _spec(args).open_remote()
    with _Bar(args, "pushing") as bar:
        reports = store.push(_digest(args, args.digest), progress=bar, total=bar.set_total)
    if args.json:
        _print_json([asdict(report) for report in reports])
        return
    for report in reports:
        print(
            f"{report.remote}: sent {report.missing} of {report.blobs} blobs "
            f"({report.bytes_sent} bytes) in {report.seconds:.2f} s"
        )


def _cmd_pull(args: argparse.Namespace) -> None:
    layered = _spec(args).open_remote()
    root = _digest(args, args.digest)
    if args.path:
        # only the directories on the way are fetched
        subtree = CasDirectory(layered, root).open_directory(_inside(args.path), follow_symlinks=True)
        assert isinstance(subtree, CasDirectory)
        root = subtree.get_digest()
    with _Bar(args, "pulling") as bar:
        layered.pull(root, tree_only=args.tree_only, progress=bar, total=bar.set_total)
    if args.json:
        _print_json({"digest": str(root), "tree_only": args.tree_only})
    else:
        print(root)


def _cmd_mount(args: argparse.Namespace) -> None:
    digest = _digest(args, args.digest)
    from casvfs.fuse import serve, start_background  # needs the fuse extra

    if args.background:
        pid = start_background(
            _spec(args),
            digest,
            args.mountpoint,
            writable=args.writable,
            log=args.log,
            scratch=args.scratch,
            allow_other=args.allow_other,
        )
        print(pid)
        return
    final = serve(
        _spec(args).open(),
        digest,
        args.mountpoint,
        writable=args.writable,
        scratch=args.scratch,
        allow_other=args.allow_other,
    )
    if args.writable:
        print(final)


def _cmd_snapshot(args: argparse.Namespace) -> None:
    from casvfs.fuse import get_digest

    print(get_digest(args.mountpoint))


def _cmd_umount(args: argparse.Namespace) -> None:
    from casvfs.fuse import unmount_background

    print(unmount_background(_spec(args), args.mountpoint))


def _qualifiers(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return make_qualifiers(parse_qualifier(text) for text in args.qualifier or ())


def _ref_line(ref: Ref) -> str:
    qualifiers = " ".join(f"{name}={value}" for name, value in ref.qualifiers)
    expiry = f" expires {ref.expire_at.isoformat(timespec='seconds')}" if ref.expire_at else ""
    expired = " (expired)" if ref.expired() else ""
    return (
        f"{ref.uri}  {ref.kind} {ref.digest}" + (f"  {qualifiers}" if qualifiers else "") + expiry + expired
    )


def _cmd_ref_set(args: argparse.Namespace) -> None:
    store = _spec(args).open_local()
    index = RefIndex.of_store(store)
    kind: Kind = "blob" if args.blob else "directory"
    ref = index.set(
        args.name,
        index.resolve(args.digest, kind=kind),
        kind=kind,
        qualifiers=_qualifiers(args),
        references_blobs=[index.resolve(text, kind="blob") for text in args.references_blob or ()],
        references_directories=[index.resolve(text) for text in args.references_directory or ()],
        expire_at=utc_now() + parse_duration(args.expire) if args.expire else None,
        store=store,
    )
    _print_json(ref.to_json()) if args.json else print(_ref_line(ref))


def _cmd_ref_get(args: argparse.Namespace) -> None:
    ref = _refs(args).get(
        args.name,
        _qualifiers(args),
        kind="blob" if args.blob else "directory" if args.directory else None,
        match="exact" if args.exact else "subset",
    )
    _print_json(ref.to_json()) if args.json else print(ref.digest)


def _cmd_ref_ls(args: argparse.Namespace) -> None:
    refs = _refs(args).by_prefix(args.prefix)
    if args.json:
        _print_json([ref.to_json() for ref in refs])
        return
    for ref in refs:
        print(_ref_line(ref))


def _cmd_ref_rm(args: argparse.Namespace) -> None:
    removed = _refs(args).remove(args.name, _qualifiers(args) if args.qualifier else None)
    print(f"removed {removed} reference(s) {args.name!r}")


def _cmd_asset_fetch(args: argparse.Namespace) -> None:
    from casvfs.remote.publish import asset_clients, fetch_asset

    spec = _spec(args)
    kind: Kind = "directory" if args.directory else "blob"
    found = fetch_asset(asset_clients(spec.remote_config()), args.uri, _qualifiers(args), kind=kind)
    if found is None:
        raise RefError(f"no remote has a {kind} asset {args.uri[0]!r} with those qualifiers",
                       reason=REASON_REF_NOT_FOUND)  # fmt: skip
    if args.pull or args.tree_only:
        layered = spec.open_remote()
        if kind == "directory":
            layered.pull(found.digest, tree_only=args.tree_only)
        else:
            layered.fetch_missing([found.digest])
    ref = found.as_ref(args.name)
    RefIndex.of_store(spec.open_local()).record([ref])
    _print_json(ref.to_json()) if args.json else print(found.digest)


def _cmd_asset_push(args: argparse.Namespace) -> None:
    from casvfs.remote.publish import asset_clients, push_asset

    spec = _spec(args)
    index = RefIndex.of_store(spec.open_local())
    if args.digest is None:
        ref = index.get(args.name, _qualifiers(args), match="exact" if args.qualifier else "subset")
    else:
        kind: Kind = "blob" if args.blob else "directory"
        ref = Ref(args.name, kind, index.resolve(args.digest, kind=kind), _qualifiers(args))
    report = push_asset(spec.open_remote(), asset_clients(spec.remote_config(), push=True), ref)
    if args.json:
        _print_json(asdict(report))
        return
    for sent in report.content:
        print(f"{sent.remote}: sent {sent.missing} of {sent.blobs} blobs ({sent.bytes_sent} bytes)")
    for url in report.indexed:
        print(f"{url}: {ref.uri} -> {ref.digest}")


def _cmd_source_fetch(args: argparse.Namespace) -> None:
    from casvfs.origin import Integrity
    from casvfs.remote.publish import asset_clients
    from casvfs.remote.sources import fetch_source

    spec = _spec(args)
    qualifiers = dict(_qualifiers(args))
    if args.sha256 or args.sri:
        qualifiers["checksum.sri"] = str(
            Integrity.sha256_hex(args.sha256) if args.sha256 else Integrity.parse(args.sri)
        )
    config = spec.remote_config() if spec.has_remotes else None
    clients = asset_clients(config) if config is not None and config.index_remotes else []
    pushers = [client for client in clients if client.spec.push]
    if args.push and not pushers:
        pushers = asset_clients(config, push=True) if config is not None else []
        if not pushers:
            raise ValueError("--push needs a remote (type all or index) to push to")
    store = spec.open()
    with _Bar(args, "fetching") as bar:
        fetched = fetch_source(
            store,
            RefIndex.of_store(spec.open_local()),
            clients,
            args.uri,
            make_qualifiers(qualifiers),
            kind="directory" if args.directory else "blob",
            names=args.name or (),
            push=pushers,
            full=args.full,
            progress=lambda size: bar(0, size),
        )
    if args.json:
        _print_json({"digest": str(fetched.digest), "found": fetched.found.value,
                     "pushed": asdict(fetched.pushed) if fetched.pushed else None})  # fmt: skip
    else:
        print(fetched.digest)


def _cmd_gc(args: argparse.Namespace) -> None:
    from casvfs.gc import collect

    store = _spec(args).open_local()
    report = collect(
        store,
        grace=parse_duration(args.grace).total_seconds(),
        quota_high=_quota(store.root, args.quota_high),
        quota_low=_quota(store.root, args.quota_low),
        dry_run=args.dry_run,
    )
    if args.json:
        _print_json(asdict(report))
        return
    verb = "would remove" if report.dry_run else "removed"
    for name in report.listed:
        print(f"would remove {name}")
    print(
        f"{verb} {report.removed} of {report.objects} objects "
        f"({report.freed_bytes} of {report.stored_bytes} bytes); "
        f"{report.reachable} reached from {report.roots} roots, {report.kept_young} kept as recently used"
        + (f"; {report.missing} named but not in the store" if report.missing else "")
    )


def _cmd_stats(args: argparse.Namespace) -> None:
    from casvfs.gc import store_stats

    stats = store_stats(_spec(args).open_local())
    if args.json:
        _print_json(asdict(stats))
    else:
        print(
            f"{stats.objects} objects, {stats.stored_bytes} bytes; {stats.live_refs} live references "
            f"({stats.refs} recorded) naming {stats.trees} trees; {stats.reachable_bytes} bytes reachable, "
            f"{stats.reclaimable_bytes} reclaimable"
        )


def _quota(store: str, text: str | None) -> int | None:
    from casvfs.gc import disk_quota

    return disk_quota(store, text) if text else None


def _cmd_run(args: argparse.Namespace) -> None:
    from casvfs.sandbox import DEFAULT_ENV, run

    command = list(args.argv)
    if not command:
        raise ValueError("no command given (casvfs run DIGEST -- CMD ARGS...)")
    env = dict(DEFAULT_ENV)
    for text in args.env or ():
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise ValueError(f"an environment variable is NAME=VALUE, not {text!r}")
        env[name] = value
    spec = _spec(args)
    result = run(
        spec.open(),
        _digest(args, args.digest),
        command,
        cwd=args.cwd,
        env=env,
        output_paths=args.output,
        stage=args.stage,
        network=args.network,
        timeout=args.timeout,
        root_at=args.root_at,
        isolate=not args.no_isolate,
        stream=True,
    )
    if args.ref:
        RefIndex.of_store(spec.open_local()).set(args.ref, result.digest)
    print(result.digest, flush=True)
    if result.timed_out:
        log.error("the command ran out of time (%s s)", args.timeout)
        raise SystemExit(124)
    if result.signal is not None:
        log.error("the command was killed by signal %d", result.signal)
        raise SystemExit(128 + result.signal)
    raise SystemExit(result.exit_code or 0)


def _cmd_execute(args: argparse.Namespace) -> None:
    from casvfs.sandbox import LocalActionCache, execute
    from casvfs.sandbox.execute import ActionCache

    spec = _spec(args)
    store: ContentStore = spec.open_local()
    cache: ActionCache = LocalActionCache(store, RefIndex.of_store(spec.open_local()))
    upload = None
    if spec.has_remotes:
        from casvfs.remote import ActionCacheClient
        from casvfs.remote.transfer import push_tree

        # one store and one set of connections for reading the action and uploading its outputs
        store = layered = spec.open_remote()
        pushers = [client for client in layered.remotes if client.spec.push]
        if not pushers:
            raise ValueError("a remote action cache needs a remote with push: true")
        cache = ActionCacheClient(pushers[0].spec)

        def upload(result: Any) -> None:
            wanted = [Digest.from_proto(item.digest) for item in result.output_files]
            wanted += [Digest.from_proto(result.stdout_digest), Digest.from_proto(result.stderr_digest)]
            for item in result.output_directories:
                wanted.append(Digest.from_proto(item.tree_digest))
                wanted += layered.tree_blobs(Digest.from_proto(item.root_directory_digest), directories=True)
            push_tree(pushers[0], layered, wanted)

    done = execute(
        store,
        _digest(args, args.action),
        cache=cache,
        stage=args.stage,
        isolate=not args.no_isolate,
        upload=upload,
    )
    result = done.result
    if args.json:
        from google.protobuf.json_format import MessageToDict

        _print_json(
            {"cached": done.cached, "result": MessageToDict(result, preserving_proto_field_name=True)}
        )
    else:
        where = "cached" if done.cached else "ran"
        print(f"{where}: exit {result.exit_code}, stdout {Digest.from_proto(result.stdout_digest)}")
        for item in result.output_directories:
            print(f"{item.path}/ {Digest.from_proto(item.root_directory_digest)}")
        for file in result.output_files:
            print(f"{file.path} {Digest.from_proto(file.digest)}")
    raise SystemExit(1 if result.exit_code else 0)


def _cmd_serve(args: argparse.Namespace) -> None:
    from casvfs.remote.config import RemoteSpec
    from casvfs.serve import ServeConfig, Server, serve

    config = ServeConfig(
        store=_spec(args).path,
        bind=args.bind,
        instance=args.instance_name,
        remote=RemoteSpec(args.cas, instance_name=args.instance_name) if args.cas else None,
        references=args.references,
        match=args.qualifier_match,
        qualifiers=frozenset(args.allow_qualifier) if args.allow_qualifier else None,
        metrics_port=args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        push_auth=args.push_auth,
        push_tokens=args.push_token_file,
        workers=args.workers,
        fetch_allow=tuple(args.fetch_allow or ()),
        gc_quota_high=_quota(args.store, args.gc_quota_high),
        gc_quota_low=_quota(args.store, args.gc_quota_low),
        gc_interval=parse_duration(args.gc_interval).total_seconds(),
    )

    def ready(server: Server) -> None:
        print(f"casvfs serve: listening on {server.address}", flush=True)
        if server.metrics_port is not None:
            print(f"casvfs serve: metrics on http://127.0.0.1:{server.metrics_port}/metrics", flush=True)

    serve(config, ready=ready)


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every verb accepts, before or after its name. Given after it,
    an option's default is SUPPRESS so it cannot reset one given before."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--store",
        default=default(default_store_dir()),
        metavar="DIR",
        help="local store directory (default: $CASVFS_STORE or $XDG_CACHE_HOME/casvfs)",
    )
    parser.add_argument(
        "--remote",
        action="append",
        default=default([]),
        metavar="URL",
        help="a remote CAS to read missing blobs from and push to (repeatable; before configured ones)",
    )
    parser.add_argument(
        "--instance-name",
        default=default(""),
        metavar="NAME",
        help="REAPI instance name of the --remote remotes",
    )
    parser.add_argument(
        "--config",
        default=default(default_config_file()),
        metavar="FILE",
        help="user configuration of remotes (default: $CASVFS_CONFIG or $XDG_CONFIG_HOME/casvfs/config.yaml)",
    )
    parser.add_argument(
        "--project-config", default=default(None), metavar="FILE", help="a project's configuration of remotes"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress bars or warnings"
    )
    parser.add_argument("-v", "--verbose", action="count", default=default(0), help="log more (-vv: debug)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``casvfs`` command."""
    parser = argparse.ArgumentParser(
        prog="casvfs",
        description="Manipulate big file trees by reference, in a content-addressable store "
        "(REAPI CAS). A local store by default; remotes with --remote or a configuration.",
    )
    parser.add_argument("--version", action="version", version=f"casvfs {metadata.version('casvfs')}")
    _global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def verb_in(
        group: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], None]
    ) -> argparse.ArgumentParser:
        """Add the verb *name* to *group* (the subparsers of the command or of a verb)."""
        command: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        command.set_defaults(run=run)
        return command

    def verb(name: str, help_text: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        return verb_in(commands, name, help_text, run)

    def json_option(command: argparse.ArgumentParser) -> None:
        command.add_argument("--json", action="store_true", help="print the result as JSON")

    def max_size_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--max-size",
            type=_size,
            metavar="SIZE",
            help="refuse, before writing anything, a tree whose files add up to more (e.g. 10G)",
        )

    digest_help = "root digest of the tree, HASH/SIZE, or a reference name"

    command = verb("import", "import a host directory; print its digest", _cmd_import)
    command.add_argument("path", help="the host directory to import")
    command.add_argument(
        "--property",
        action="append",
        choices=["mtime", "unix_mode"],
        help="node property to record (repeatable); none by default",
    )
    command.add_argument(
        "--digest-only", action="store_true", help="print the root digest without storing anything"
    )
    command.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="leave out entries whose relative path or name matches this shell pattern (repeatable)",
    )
    command.add_argument(
        "--exclude-from",
        action="append",
        metavar="FILE",
        help="read exclude patterns from FILE, one per line ('#' starts a comment)",
    )
    json_option(command)

    command = verb("ls", "list a directory (or one file) of a tree", _cmd_ls)
    command.add_argument("digest", help=digest_help)
    command.add_argument(
        "path", nargs="?", default="", help="a directory or file in the tree (default: the root)"
    )
    command.add_argument("-l", "--long", action="store_true", help="type, size and digest")
    command.add_argument("-R", "--recursive", action="store_true", help="every path below")
    json_option(command)

    command = verb("cat", "write a file of a tree to stdout", _cmd_cat)
    command.add_argument("digest", help=digest_help)
    command.add_argument("path", help="the file in the tree")

    command = verb("export", "write a tree into a new or empty host directory", _cmd_export)
    command.add_argument("digest", help=digest_help)
    command.add_argument("directory", help="the host directory to write (made if missing)")
    command.add_argument(
        "--link",
        action="store_true",
        help="clone or hard-link files from the store where that is safe (as root: clones or copies)",
    )
    command.add_argument(
        "--hardlink",
        action="store_true",
        help="hard-link files from the store even as root (a write into the export then changes "
        "the store; such objects are found corrupt when next read and quarantined)",
    )
    command.add_argument(
        "--merge", action="store_true", help="merge into a non-empty directory, replacing files it holds"
    )
    command.add_argument(
        "--special-modes",
        action="store_true",
        help="keep setuid, setgid and sticky bits of recorded modes (dropped by default)",
    )
    max_size_option(command)

    command = verb("tar", "write a tree as a deterministic tar archive", _cmd_tar)
    command.add_argument("digest", help=digest_help)
    command.add_argument("file", help="archive path (written whole or not at all), or - for stdout")
    max_size_option(command)

    command = verb("du", "how much a tree expands to: bytes, files, directories, symlinks", _cmd_du)
    command.add_argument("digest", help=digest_help)
    command.add_argument("path", nargs="?", default="", help="a directory in the tree (default: the root)")
    json_option(command)

    command = verb("diff", "list paths added (+), removed (-), modified (M); exit 1 if any", _cmd_diff)
    command.add_argument("a", help="the digest of the first tree")
    command.add_argument("b", help="the digest of the second tree")
    command.add_argument("-l", "--long", action="store_true", help="say what changed: content, mode, type")
    json_option(command)

    command = verb("mount", "mount a tree (FUSE); foreground until unmounted", _cmd_mount)
    command.add_argument("digest", help=digest_help)
    command.add_argument("mountpoint", help="an empty directory that is not a mount point")
    command.add_argument(
        "--writable", action="store_true", help="copy-on-write; print the new digest at the end"
    )
    command.add_argument(
        "--background", action="store_true", help="return (printing the server pid) once live"
    )
    command.add_argument(
        "--log", metavar="FILE", help="with --background: the server's log (default: logs/ in the store)"
    )
    command.add_argument(
        "--scratch", metavar="DIR", help="where written files go (default: scratch/ in the store)"
    )
    command.add_argument(
        "--allow-other",
        action="store_true",
        help="let other users in (their access checked against the modes and owners shown)",
    )

    command = verb("snapshot", "print the current digest of a mounted tree", _cmd_snapshot)
    command.add_argument("mountpoint", help="where the tree is mounted")

    command = verb("umount", "capture a mounted tree, unmount it, print its digest", _cmd_umount)
    command.add_argument("mountpoint", help="where the tree is mounted")

    command = verb("push", "upload a tree to the remotes marked push", _cmd_push)
    command.add_argument("digest", help=digest_help)
    json_option(command)

    command = verb("pull", "fetch a tree (or one subdirectory of it) from the remotes", _cmd_pull)
    command.add_argument("digest", help=digest_help)
    command.add_argument("--path", default="", help="only this subdirectory of the tree (a prefetch)")
    command.add_argument(
        "--tree-only", action="store_true", help="only the Directory messages; file blobs arrive when read"
    )
    json_option(command)

    def qualifier_option(command: argparse.ArgumentParser, what: str) -> None:
        command.add_argument(
            "--qualifier", action="append", metavar="NAME=VALUE", help=what + " (repeatable)"
        )

    command = verb("ref", "name trees and blobs: set, get, ls, rm references in the local store", _no_verb)
    refs = command.add_subparsers(
        dest="ref_command", required=True, metavar="ACTION", help="set, get, ls or rm"
    )

    ref_verb = functools.partial(verb_in, refs)

    command = ref_verb(
        "set", "record NAME -> DIGEST (refused unless all its content is in the store)", _cmd_ref_set
    )
    command.add_argument("name", help="a URI or any name, e.g. release/1.0")
    command.add_argument("digest", help="HASH/SIZE, or the name of another reference")
    command.add_argument("--blob", action="store_true", help="DIGEST is a blob, not the root of a tree")
    qualifier_option(command, "a qualifier of the reference")
    command.add_argument("--expire", metavar="DURATION", help="stop matching after this long (30m, 12h, 7d)")
    command.add_argument("--references-blob", action="append", metavar="DIGEST", help="another blob it needs")
    command.add_argument(
        "--references-directory", action="append", metavar="DIGEST", help="another tree it needs, whole"
    )
    json_option(command)

    command = ref_verb("get", "print the digest of the newest reference NAME that matches", _cmd_ref_get)
    command.add_argument("name", help="the reference's name")
    qualifier_option(command, "only a reference with this qualifier")
    command.add_argument("--exact", action="store_true", help="only one with exactly these qualifiers")
    kinds = command.add_mutually_exclusive_group()
    kinds.add_argument("--blob", action="store_true", help="only a blob reference")
    kinds.add_argument("--directory", action="store_true", help="only a directory reference")
    json_option(command)

    command = ref_verb("ls", "list references (expired ones are marked)", _cmd_ref_ls)
    command.add_argument("prefix", nargs="?", default="", help="only names starting with this")
    json_option(command)

    command = ref_verb("rm", "remove the references NAME (with --qualifier: only that one)", _cmd_ref_rm)
    command.add_argument("name", help="the reference's name")
    qualifier_option(command, "remove only the entry with exactly these qualifiers")

    command = verb("asset", "fetch or push named assets on Remote Asset servers", _no_verb)
    assets = command.add_subparsers(
        dest="asset_command", required=True, metavar="ACTION", help="fetch or push"
    )

    asset_verb = functools.partial(verb_in, assets)

    command = asset_verb(
        "fetch",
        "ask the index remotes for an asset; record the answer as a local reference",
        _cmd_asset_fetch,
    )
    command.add_argument("uri", nargs="+", help="the asset's URI (several: any of them)")
    command.add_argument("--directory", action="store_true", help="a tree, not a blob")
    qualifier_option(command, "a qualifier the asset must have")
    command.add_argument("--name", help="record the local reference under this name (default: the URI)")
    pulls = command.add_mutually_exclusive_group()
    pulls.add_argument("--pull", action="store_true", help="also fetch all of its content now")
    pulls.add_argument("--tree-only", action="store_true", help="also fetch its Directory messages now")
    json_option(command)

    command = asset_verb(
        "push", "push a local reference (or NAME DIGEST) to the index remotes, content first", _cmd_asset_push
    )
    command.add_argument("name", help="the local reference to push, or the URI to push DIGEST under")
    command.add_argument("digest", nargs="?", help="push this instead of the local reference's digest")
    command.add_argument("--blob", action="store_true", help="DIGEST is a blob, not the root of a tree")
    qualifier_option(command, "the asset's qualifier (with no DIGEST: which local reference)")
    json_option(command)

    command = verb(
        "source", "a source cache: fetch sources from the index remotes, else from origin", _no_verb
    )
    sources = command.add_subparsers(dest="source_command", required=True, metavar="ACTION", help="fetch")
    command = verb_in(
        sources,
        "fetch",
        "get a source by URL: from a local reference, an index remote, else its origin (pushed with --push)",
        _cmd_source_fetch,
    )
    command.add_argument("uri", help="where the source comes from (http, https, file; git with --directory)")
    command.add_argument(
        "--directory", action="store_true", help="a tree (an archive unpacked, a git commit)"
    )
    checks = command.add_mutually_exclusive_group()
    checks.add_argument("--sha256", metavar="HEX", help="the content's SHA-256 (for a tree: the archive's)")
    checks.add_argument("--sri", metavar="SRI", help="a checksum.sri value (sha256/384/512, several allowed)")
    qualifier_option(command, "a qualifier: directory=SUBDIR, vcs.commit=SHA, vcs.branch=NAME")
    command.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="also record it under this name (e.g. a BuildStream URN)",
    )
    command.add_argument("--push", action="store_true", help="push what was fetched from origin")
    command.add_argument("--full", action="store_true", help="on a remote hit, pull every file now")
    json_option(command)

    command = verb(
        "serve", "run a Remote Asset + CAS server (a BuildStream artifact and source cache)", _cmd_serve
    )
    command.add_argument(
        "--bind",
        default="127.0.0.1:50051",
        metavar="ADDRESS",
        help="HOST:PORT or unix:PATH (default 127.0.0.1:50051)",
    )
    command.add_argument(
        "--cas",
        metavar="URL",
        help="serve assets alone, in front of this REAPI CAS (BuildGrid, buildbox-casd)",
    )
    command.add_argument(
        "--references",
        choices=["index", "action-cache"],
        default="index",
        help="keep references in the store's refs index (default) or in --cas's ActionCache",
    )
    command.add_argument(
        "--qualifier-match",
        choices=["subset", "exact"],
        default="subset",
        help="how fetches match (default subset)",
    )
    command.add_argument(
        "--allow-qualifier", action="append", metavar="NAME", help="accept only these qualifiers (repeatable)"
    )
    command.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on 127.0.0.1"
    )
    command.add_argument("--tls-cert", metavar="FILE", help="the server's PEM certificate chain (TLS)")
    command.add_argument("--tls-key", metavar="FILE", help="the server's PEM private key")
    command.add_argument(
        "--tls-client-ca", metavar="FILE", help="require client certificates signed by these"
    )
    command.add_argument(
        "--push-auth", action="store_true", help="only clients with a token or certificate may push"
    )
    command.add_argument("--push-token-file", metavar="FILE", help="tokens allowed to push, one per line")
    command.add_argument(
        "--gc-quota-high", metavar="SIZE", help="collect garbage above this size (10G, 80%%)"
    )
    command.add_argument("--gc-quota-low", metavar="SIZE", help="down to this size (default: the high quota)")
    command.add_argument(
        "--gc-interval", default="10m", metavar="DURATION", help="how often to look (default 10m)"
    )
    command.add_argument(
        "--fetch-allow",
        action="append",
        metavar="PREFIX",
        help="fetch misses from origin for URIs under this prefix (repeatable; none by default)",
    )
    command.add_argument(
        "--workers", type=int, default=4, help="threads answering calls (default 4; more for big uploads)"
    )

    command = verb(
        "run", "run a command in a tree, isolated (bubblewrap); print the tree it leaves", _cmd_run
    )
    command.usage = "casvfs run DIGEST [options] -- CMD [ARGS...]"
    command.add_argument("digest", help=digest_help)
    # the command itself comes after "--": main() hands it over as args.argv
    command.set_defaults(argv=[])
    command.add_argument("--cwd", default="", metavar="DIR", help="working directory in the tree")
    command.add_argument(
        "--env", action="append", metavar="NAME=VALUE", help="an environment variable (repeatable)"
    )
    command.add_argument(
        "--output", action="append", metavar="PATH", help="keep only these paths (repeatable)"
    )
    command.add_argument("--stage", choices=["fuse", "hardlink", "copy"], default="fuse", help="how to stage")
    command.add_argument("--network", action="store_true", help="share the host's network")
    command.add_argument("--timeout", type=float, metavar="SECONDS", help="kill the command after this long")
    command.add_argument(
        "--root-at", default="/", metavar="PATH", help="mount the tree here, over the host's system read-only"
    )
    command.add_argument("--no-isolate", action="store_true", help="run without bubblewrap (no isolation)")
    command.add_argument("--ref", metavar="NAME", help="record the output tree as this reference")

    command = verb("execute", "run a REAPI Action from the store; cache its ActionResult", _cmd_execute)
    command.add_argument("action", help="the Action's digest, HASH/SIZE")
    command.add_argument("--stage", choices=["fuse", "hardlink", "copy"], default="fuse", help="how to stage")
    command.add_argument("--no-isolate", action="store_true", help="run without bubblewrap (no isolation)")
    json_option(command)

    command = verb("gc", "remove what no reference, live mount or recent use reaches", _cmd_gc)
    command.add_argument(
        "--grace", default="1h", metavar="DURATION", help="keep whatever was used this recently (default 1h)"
    )
    command.add_argument(
        "--quota-high", metavar="SIZE", help="only collect above this size (10G, or 80%% of the disk)"
    )
    command.add_argument(
        "--quota-low", metavar="SIZE", help="then down to this size (default: the high quota)"
    )
    command.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    json_option(command)

    command = verb("stats", "what the store holds: objects, bytes, references, reclaimable bytes", _cmd_stats)
    json_option(command)

    command = verb("fsck", "verify every object of the local store, or that trees are complete", _cmd_fsck)
    command.add_argument(
        "digests",
        nargs="*",
        metavar="DIGEST",
        help="check only these trees: every blob they need is present and intact",
    )
    command.add_argument(
        "--repair",
        action="store_true",
        help="quarantine corrupt objects; remove stale temporary files and dead mounts' scratch",
    )
    json_option(command)
    return parser


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"casvfs: {record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    level = (
        logging.ERROR
        if args.quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _message(error: CasvfsError, args: argparse.Namespace) -> str:
    message = str(error)
    if error.reason == REASON_BLOB_MISSING and not _spec(args).has_remotes:
        message += " (the store may hold the tree but not its content: pass --remote URL or --config FILE)"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 difference/failure, 2 usage)."""
    words = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "run" in words and "--" in words and words.index("run") < words.index("--"):
        # casvfs run DIGEST [options] -- CMD ARGS: everything after -- is the command's
        at = words.index("--")
        words, command = words[:at], words[at + 1 :]
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exit_:  # usage errors (2), --help and --version (0)
        return int(exit_.code or 0)
    if command:
        args.argv = command
    _setup_logging(args)
    try:
        args.run(args)
    except CasvfsError as error:
        print(f"casvfs: error: {_message(error, args)}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"casvfs: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`casvfs ls | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"casvfs: error:{where} {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
