"""REAPI Actions run locally, like buildbox-run: read an ``Action`` and its
``Command``, run the command over the input root in a sandbox
(:func:`casvfs.sandbox.run`), and write an ``ActionResult`` to an action cache,
the local one or a remote's. A cached result is returned without running again,
unless the action says ``do_not_cache``.

The local action cache keeps each result as a blob named by a reference
``urn:casvfs:action-result:HASH/SIZE`` whose reference lists hold the outputs,
so garbage collection keeps a cached result's outputs as long as the result.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from casvfs.digest import Digest, serialize_message
from casvfs.directory.casdir import CasDirectory
from casvfs.errors import REASON_INVALID_DIRECTORY, REASON_TIMEOUT, CasvfsError, RefError, StoreError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.refs import RefIndex
from casvfs.sandbox.run import RunResult, run
from casvfs.sandbox.stage import StageKind
from casvfs.store.base import ContentStore
from casvfs.tree import FileType

RESULT_PREFIX = "urn:casvfs:action-result:"


class ActionCache(Protocol):
    """Where results are kept: :class:`LocalActionCache`, or a remote's
    :class:`~casvfs.remote.ActionCacheClient`."""

    def get(self, action: Digest) -> pb.ActionResult | None:
        """The result cached for *action*, or None."""

    def update(self, action: Digest, result: pb.ActionResult) -> None:
        """Cache *result* for *action*."""


class LocalActionCache:
    """Results in *store*, named in its refs index *index*."""

    def __init__(self, store: ContentStore, index: RefIndex) -> None:
        self.store = store
        self.index = index

    def get(self, action: Digest) -> pb.ActionResult | None:
        """The result cached for *action*, if it and every output are present."""
        try:
            ref = self.index.get(RESULT_PREFIX + str(action), kind="blob")
            result = pb.ActionResult.FromString(self.store.read_bytes(ref.digest))
        except (RefError, StoreError, DecodeError):
            return None
        blobs, trees = ref.content
        if self.store.find_missing(blobs + trees):
            return None
        return result

    def update(self, action: Digest, result: pb.ActionResult) -> None:
        """Cache *result* for *action*, its outputs referenced."""
        blob = self.store.put_bytes(serialize_message(result))
        files = [Digest.from_proto(item.digest) for item in result.output_files]
        logs = [Digest.from_proto(d) for d in (result.stdout_digest, result.stderr_digest) if d.hash]
        trees = [Digest.from_proto(item.root_directory_digest) for item in result.output_directories]
        tree_blobs = [Digest.from_proto(item.tree_digest) for item in result.output_directories]
        self.index.set(
            RESULT_PREFIX + str(action),
            blob,
            kind="blob",
            references_blobs=files + logs + tree_blobs,
            references_directories=trees,
        )


@dataclass(frozen=True)
class Executed:
    """What :func:`execute` did: the result, whether it came from the cache, and
    the run (None for a cached result)."""

    action: Digest
    result: pb.ActionResult
    cached: bool
    run: RunResult | None = None


def _message(
    store: ContentStore, digest: Digest, kind: type[pb.Action] | type[pb.Command], what: str
) -> object:
    try:
        return kind.FromString(store.read_bytes(digest))
    except DecodeError:
        raise StoreError(
            f"{what} {digest} is not a {kind.__name__} message", reason=REASON_INVALID_DIRECTORY
        ) from None


def _stamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _tree_message(store: ContentStore, root: Digest) -> pb.Tree:
    tree = pb.Tree(root=store.get_directory(root))
    tree.children.extend(message for digest, message in store.get_tree(root) if digest != root)
    return tree


def _outputs(command: pb.Command) -> list[tuple[str, str]]:
    """Each output path as the Command names it (relative to its working
    directory) and as a path in the tree."""
    paths: Sequence[str] = command.output_paths or [*command.output_files, *command.output_directories]
    return [(path, posixpath.normpath(posixpath.join(command.working_directory, path))) for path in paths]


def _result(store: ContentStore, command: pb.Command, ran: RunResult) -> pb.ActionResult:
    result = pb.ActionResult(
        exit_code=ran.exit_code if ran.exit_code is not None else 128 + (ran.signal or 0),
        stdout_digest=ran.stdout_digest.to_proto(),
        stderr_digest=ran.stderr_digest.to_proto(),
    )
    tree: CasDirectory = ran.output
    for wanted, inside in _outputs(command):
        if not tree.exists(inside):
            continue
        stat = tree.stat(inside)
        if stat.file_type is FileType.REGULAR_FILE:
            digest = Digest(tree.file_digest(inside), stat.size)
            result.output_files.add(path=wanted, digest=digest.to_proto(), is_executable=stat.executable)
        elif stat.file_type is FileType.SYMLINK:
            result.output_symlinks.add(path=wanted, target=tree.readlink(inside))
        elif stat.file_type is FileType.DIRECTORY:
            subtree = tree.open_directory(inside)
            assert isinstance(subtree, CasDirectory)
            root = subtree.get_digest()
            tree_blob = store.put_bytes(serialize_message(_tree_message(store, root)))
            result.output_directories.add(
                path=wanted, tree_digest=tree_blob.to_proto(), root_directory_digest=root.to_proto()
            )
    return result


def execute(
    store: ContentStore,
    action_digest: Digest,
    *,
    cache: ActionCache | None = None,
    stage: StageKind = "fuse",
    isolate: bool = True,
    upload: Callable[[pb.ActionResult], None] | None = None,
) -> Executed:
    """Run the REAPI Action *action_digest* from *store* (see the module's text)
    and cache its result in *cache* (unless ``do_not_cache``); a result already
    cached there is returned instead of running again.

    :param upload: called with the result before it is cached, to make its
        outputs present where the cache's readers look (a remote CAS)."""
    action = _message(store, action_digest, pb.Action, "action")
    assert isinstance(action, pb.Action)
    if cache is not None and not action.do_not_cache:
        hit = cache.get(action_digest)
        if hit is not None:
            return Executed(action_digest, hit, cached=True)
    command = _message(store, Digest.from_proto(action.command_digest), pb.Command, "command")
    assert isinstance(command, pb.Command)
    if not command.arguments:
        raise ValueError(f"the command of action {action_digest} has no arguments")
    started = time.time()
    timeout = action.timeout.ToTimedelta().total_seconds() if action.HasField("timeout") else None
    ran = run(
        store,
        Digest.from_proto(action.input_root_digest),
        list(command.arguments),
        cwd=command.working_directory,
        env={item.name: item.value for item in command.environment_variables},
        output_paths=[inside for _wanted, inside in _outputs(command)],
        stage=stage,
        timeout=timeout or None,
        isolate=isolate,
    )
    if ran.timed_out:
        raise CasvfsError(f"action {action_digest} ran out of time ({timeout} s)", reason=REASON_TIMEOUT)
    result = _result(store, command, ran)
    metadata = result.execution_metadata
    metadata.worker = "casvfs"
    staged = started + ran.stage_seconds
    executed = staged + ran.run_seconds
    for field, moment in (
        ("queued_timestamp", started),
        ("worker_start_timestamp", started),
        ("input_fetch_start_timestamp", started),
        ("input_fetch_completed_timestamp", staged),
        ("execution_start_timestamp", staged),
        ("execution_completed_timestamp", executed),
        ("output_upload_start_timestamp", executed),
        ("output_upload_completed_timestamp", executed + ran.capture_seconds),
        ("worker_completed_timestamp", executed + ran.capture_seconds),
    ):
        getattr(metadata, field).CopyFrom(_stamp(moment))
    if upload is not None:
        upload(result)
    if cache is not None and not action.do_not_cache:
        cache.update(action_digest, result)
    return Executed(action_digest, result, cached=False, run=ran)


def put_action(
    store: ContentStore,
    input_root: Digest,
    arguments: Sequence[str],
    *,
    output_paths: Sequence[str] = (),
    working_directory: str = "",
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    do_not_cache: bool = False,
    directory_format: pb.Command.OutputDirectoryFormat = pb.Command.TREE_ONLY,
) -> Digest:
    """Store a ``Command`` and an ``Action`` running it over *input_root*; return
    the Action's digest (what :func:`execute` and ``casvfs execute`` take).
    *directory_format* is the Command's ``output_directory_format`` (casvfs
    always gives both forms; other workers heed it)."""
    command = pb.Command(
        arguments=list(arguments),
        output_paths=sorted(output_paths),
        working_directory=working_directory,
        output_directory_format=directory_format,
    )
    for name, value in sorted((env or {}).items()):
        command.environment_variables.add(name=name, value=value)
    action = pb.Action(
        command_digest=store.put_bytes(serialize_message(command)).to_proto(),
        input_root_digest=input_root.to_proto(),
        do_not_cache=do_not_cache,
    )
    if timeout is not None:
        action.timeout.FromNanoseconds(int(timeout * 1e9))
    return store.put_bytes(serialize_message(action))
