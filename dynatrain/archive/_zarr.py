"""The Zarr back end: a store opened read-only through zarr's public API.

Everything here uses zarr's public interface only (``zarr.api.asynchronous``,
``zarr.AsyncGroup``/``zarr.AsyncArray`` and their documented attributes, the store
interface of ``zarr.abc.store``, ``zarr.storage.FsspecStore``): zarr's internals
change between minor releases. zarr's coroutines run on an event loop of our own,
in one background thread (:func:`run`), as zarr's synchronous API runs them on its
own.

Local stores are read through :class:`~dynatrain.archive._local_store.NoFollowStore`
(nothing outside the store folder is ever read); URLs through zarr's
``FsspecStore``. Both pass every chunk through :class:`DecodeGuard`, which bounds
what one stored chunk may decompress to.
"""

from __future__ import annotations

import asyncio
import bisect
import bz2
import contextlib
import lzma
import os
import threading
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import numpy as np

from dynatrain.archive._backends import (
    MAX_CHUNK_BYTES,
    Store,
    _check_member_name,
    clip_ranges,
    decode_member_name,
    first_line,
    gaps,
    is_member_name,
)
from dynatrain.archive._local_store import SUPPORTED as NO_FOLLOW_SUPPORTED
from dynatrain.archive._local_store import NoFollowStore
from dynatrain.archive.format import is_url
from dynatrain.archive.storage import fsspec_arguments, missing_library, redact
from dynatrain.errors import ArchiveError

__all__ = ["DecodeGuard", "ZarrStore", "chunk_key_parser", "run"]

#: Node metadata read at once by ZarrStore.prefetch (requests in flight).
_PREFETCH_CONCURRENCY = 64
#: Rounds of waiting for the tasks a failed zarr call left running (see _settled).
_SETTLE_ROUNDS = 32

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Zarr's metadata documents (never chunk data).
_METADATA_KEYS = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


# -- the event loop ------------------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _forget_loop() -> None:
    """In a forked child the loop's thread does not exist: start a new one when needed."""
    global _loop, _loop_lock
    _loop, _loop_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loop)


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="dynatrain-zarr", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a zarr coroutine to completion on dynatrain's zarr event loop."""
    return asyncio.run_coroutine_threadsafe(_settled(coro), _event_loop()).result()


async def _settled(coro: Coroutine[Any, Any, Any]) -> Any:
    """Await ``coro``; if it fails, first wait for the tasks started meanwhile.

    zarr reads the chunks of a selection (and the members of a group) in concurrent
    tasks gathered without cancelling the others when one fails: its exception
    comes back while the others still run. Left behind, they are destroyed pending
    when the interpreter exits, and asyncio prints "Task was destroyed but it is
    pending!" and tracebacks on stderr, after the one-line error. Waiting (not
    cancelling: a chunk being decoded in a thread cannot be stopped) lets them
    finish; their own errors are retrieved and dropped, the first one is the one
    raised. Tasks that other threads start on the loop meanwhile are waited for too,
    which costs only time.
    """
    current = asyncio.current_task()
    before = asyncio.all_tasks()
    try:
        return await coro
    except BaseException:
        # Tasks may start tasks of their own (a chunk read, then its decoding): a few
        # rounds, until none is left.
        for _ in range(_SETTLE_ROUNDS):
            started = asyncio.all_tasks() - before - {current}
            if not started:
                break
            await asyncio.wait(started)
            for task in started:
                if not task.cancelled():
                    task.exception()  # retrieved: asyncio would log it at exit
        raise


# -- chunk keys ----------------------------------------------------------------------------------


def _metadata_dict(array: Any) -> dict[str, Any]:
    """The array's metadata as the Zarr specification writes it (``zarr.json``/``.zarray``)."""
    return dict(array.metadata.to_dict())


def chunk_key_parser(array: Any) -> Callable[[str], tuple[int, ...] | None]:
    """A function from a chunk key (relative to the array) to its storage-grid index.

    It returns ``None`` for keys that are not chunk keys. The key encodings are those
    of the Zarr specifications: format 3 ``default`` (``c/1/0/0``, or with ``.``:
    ``c.1.0.0``) and ``v2`` (``1.0.0``), format 2 with its ``dimension_separator``.
    """
    metadata = _metadata_dict(array)
    ndim = len(array.shape)
    if metadata.get("zarr_format") == 2 or "dimension_separator" in metadata:
        encoding, separator = "v2", metadata.get("dimension_separator") or "."
    else:
        spec = metadata.get("chunk_key_encoding") or {}
        encoding = spec.get("name", "default")
        separator = (spec.get("configuration") or {}).get(
            "separator", "/" if encoding == "default" else "."
        )
    prefix = "c" + separator if encoding == "default" else ""

    def parse(key: str) -> tuple[int, ...] | None:
        if encoding == "default":
            if key == "c" and ndim == 0:
                return ()
            if not key.startswith(prefix):
                return None
            key = key[len(prefix) :]
        fields = key.split(separator)
        if len(fields) != max(ndim, 1) or not all(field.isdigit() for field in fields):
            return None
        return tuple(int(field) for field in fields)

    return parse


# -- bounding what a chunk decodes to ----------------------------------------------------------


def _codec_names(array: Any) -> tuple[frozenset[str], bool]:
    """Names of the array's compressors (inner ones for sharding), and whether sharded."""
    metadata = _metadata_dict(array)
    names: set[str] = set()
    sharded = False
    for codec in metadata.get("codecs") or ():
        name = str(codec.get("name", ""))
        if name == "sharding_indexed":
            sharded = True
            for inner in (codec.get("configuration") or {}).get("codecs") or ():
                names.add(str(inner.get("name", "")))
        names.add(name)
    compressor = metadata.get("compressor")
    if isinstance(compressor, dict):
        names.add(str(compressor.get("id", "")))
    for codec in metadata.get("filters") or ():
        if isinstance(codec, dict):
            names.add(str(codec.get("id", codec.get("name", ""))))
    return frozenset(names), sharded


class DecodeGuard:
    """Refuse stored chunks that would decompress to more than their array's chunk.

    A chunk of a Zarr array decodes to a known size (its chunk shape times the item
    size), but a compressed stream can claim, or inflate to, far more: 16 KB of
    zstd can declare half a gigabyte of zeros. Before zarr decodes a chunk of an
    array registered here, its stream is checked against that size:

    * zstd: the size declared in the frame header must be present and no larger
      (zarr's own writer always declares it; nothing is decompressed to check);
    * blosc, lz4 (numcodecs framing): the size in the header, likewise;
    * gzip, zlib, bz2, lzma: decompressed here with the output bounded by that
      size (a second decompression, for these codecs only).

    Anything else (a corrupt stream, another codec) is left to zarr. The limit is
    the chunk's own size, so a valid chunk always passes.
    """

    def __init__(self, store_path: str) -> None:
        self.store_path = store_path
        self._arrays: dict[str, tuple[int, frozenset[str]]] = {}

    def register(self, array: Any, decoded_bytes: int) -> None:
        """Check the chunks of ``array`` against ``decoded_bytes`` from now on."""
        names, _ = _codec_names(array)
        self._arrays[array.path] = (decoded_bytes, names)

    def check(self, key: str, data: bytes | memoryview) -> None:
        """Raise :class:`ArchiveError` if ``data``, stored at ``key``, decodes to too much."""
        if not self._arrays or not data:
            return
        parent, _, name = key.rpartition("/")
        if name in _METADATA_KEYS:
            return
        while True:
            found = self._arrays.get(parent)
            if found is not None:
                break
            if not parent:
                return
            parent = parent.rpartition("/")[0]
        limit, codecs = found
        decoded = _decoded_size(codecs, data, limit)
        if decoded is not None and decoded > limit:
            raise ArchiveError(
                self.store_path,
                f"chunk {key} would decompress to {decoded} bytes or more, more than the"
                f" {limit} bytes of its array's chunk (a decompression bomb, or corrupt)",
            )


def _decoded_size(codecs: frozenset[str], data: bytes | memoryview, limit: int) -> int | None:
    """How many bytes ``data`` decodes to (``limit + 1`` meaning "more"), if it can be told."""
    if "zstd" in codecs and bytes(data[:4]) == _ZSTD_MAGIC:
        size = _zstd_content_size(bytes(data[:18]))
        return limit + 1 if size is None else size
    if "blosc" in codecs and len(data) >= 16 and data[0] in (1, 2):
        return int.from_bytes(bytes(data[4:8]), "little")
    if "lz4" in codecs and len(data) >= 4:
        return int.from_bytes(bytes(data[:4]), "little")
    for name, make in _STREAM_DECODERS.items():
        if name in codecs:
            try:
                decoder: Any = make()
                out = decoder.decompress(bytes(data), limit + 1)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
                return None  # not this codec's stream, or corrupt: zarr will say so
            return len(out)
    return None


_STREAM_DECODERS = {
    "gzip": lambda: zlib.decompressobj(wbits=47),  # gzip or zlib header, detected
    "zlib": lambda: zlib.decompressobj(wbits=47),
    "bz2": bz2.BZ2Decompressor,
    "lzma": lzma.LZMADecompressor,
}


def _zstd_content_size(header: bytes) -> int | None:
    """The decompressed size a zstd frame header declares, or ``None`` if it declares none.

    See RFC 8878, section 3.1.1.1: Frame_Header_Descriptor, then an optional window
    byte and dictionary id, then Frame_Content_Size of 0, 1, 2, 4 or 8 bytes.
    """
    if len(header) < 5:
        return None
    descriptor = header[4]
    size_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    dict_flag = descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if width == 0 or len(header) < position + width:
        return None
    size = int.from_bytes(header[position : position + width], "little")
    return size + 256 if width == 2 else size


def decoded_chunk_bytes(array: Any) -> int:
    """Bytes one storage chunk of ``array`` decodes to (the inner chunk when sharded)."""
    return int(np.prod(array.chunks, dtype=np.int64)) * np.dtype(array.dtype).itemsize


# -- the store -----------------------------------------------------------------------------------

#: A node's own metadata document, by format (``.zattrs`` only adds to one).
_NODE_KEYS = frozenset({"zarr.json", ".zarray", ".zgroup"})


def _nodes_below(
    keys: Iterable[str], below: Mapping[tuple[str, ...], int]
) -> list[tuple[str, ...]]:
    """The nodes whose metadata documents are among ``keys``, under the groups of ``below``.

    ``below`` maps a group to a depth: nodes 1 to that many levels under it.
    """
    found = []
    for key in keys:
        *node, name = key.split("/")
        if name not in _NODE_KEYS:
            continue
        for group, depth in below.items():
            if 0 < len(node) - len(group) <= depth and tuple(node[: len(group)]) == group:
                found.append(tuple(node))
                break
    return found


async def _open_root(store: Any) -> Any:
    """The root group, format 3 (``zarr.json``), else format 2 (``.zgroup``).

    One read for what ``ArchiveWriter`` writes: zarr's own open, not told the
    format, asks for the documents of both formats and ``.zmetadata`` at once (four
    requests in object storage, where a missing object costs as much as a present
    one). Where both documents exist, format 3 is used, as zarr does.
    """
    from zarr.api import asynchronous as zarr_async
    from zarr.errors import GroupNotFoundError

    try:
        return await zarr_async.open_group(
            store=store, mode="r", zarr_format=3, use_consolidated=False
        )
    except GroupNotFoundError:
        return await zarr_async.open_group(
            store=store, mode="r", zarr_format=2, use_consolidated=False
        )


def _fsspec_store(url: str, storage_options: Mapping[str, Any] | None) -> Any:
    """The ``FsspecStore`` of zarr for a URL, read-only, with dynatrain's storage options.

    Listings are not cached (a run still being written shows its new chunks), and
    credentials written in the URL become options (see :mod:`.storage`).
    """
    from zarr.storage import FsspecStore

    bare, options = fsspec_arguments(url, storage_options)
    try:
        return FsspecStore.from_url(bare, storage_options=options, read_only=True)
    except ImportError as exc:
        raise ArchiveError(redact(url), missing_library(url, exc).split(": ", 1)[1]) from None


class ZarrStore(Store):
    """A Zarr group (format 3, or 2) opened read-only.

    Consolidated metadata is never used: it is a copy of the members' metadata
    that a writer may not have updated (a ``.zmetadata`` listing 10 of 30
    checkpoints), and the members' own documents are what holds.
    """

    backend = "zarr"

    def __init__(self, path: str, storage_options: Mapping[str, Any] | None = None) -> None:
        location = path
        if is_url(path):
            path = redact(path)  # messages never show credentials
        super().__init__(path)
        import zarr.errors

        self._zarr = zarr
        self.guard = DecodeGuard(path)
        self._local: NoFollowStore | None = None
        self._nodes: dict[tuple[str, ...], Any] = {}
        self._all_keys: list[str] | None = None  # a URL store's keys, listed once
        try:
            if is_url(location):
                self._store: Any = _GuardedStore(
                    _fsspec_store(location, storage_options), self.guard
                )
            elif NO_FOLLOW_SUPPORTED:
                self._local = NoFollowStore(
                    path, max_file_bytes=MAX_CHUNK_BYTES + 2**20, check=self.guard.check
                )
                self._store = self._local
            else:  # no openat/O_NOFOLLOW (Windows): zarr's own local store
                from zarr.storage import LocalStore

                self._store = _GuardedStore(LocalStore(path, read_only=True), self.guard)
            self._root = run(_open_root(self._store))
        except ArchiveError:
            self.close()
            raise
        except (zarr.errors.GroupNotFoundError, FileNotFoundError) as exc:
            self.close()
            raise ArchiveError(
                path, "not a Zarr store (no zarr.json or .zgroup at its root)"
            ) from exc
        except RecursionError as exc:
            self.close()
            raise ArchiveError(path, "cannot open Zarr store: metadata nested too deeply") from exc
        except (ValueError, TypeError, KeyError, OSError, ImportError) as exc:
            self.close()
            raise ArchiveError(path, f"cannot open Zarr store ({first_line(exc)})") from exc

    def _node(self, parts: tuple[str, ...]) -> Any:
        """The ``AsyncGroup`` or ``AsyncArray`` at ``parts``, or ``None`` if absent.

        Each node's metadata is read once per open store (in object storage, each
        read is a round trip): the archive is read as it was when opened.
        """
        if not parts:
            return self._root
        if parts in self._nodes:
            return self._nodes[parts]
        where = "/" + "/".join(parts)
        for name in parts:
            _check_member_name(self.path, name, where)
        try:
            node = run(self._root.getitem("/".join(parts)))
        except KeyError:
            node = None
        except RecursionError as exc:
            raise ArchiveError(
                self.path, f"cannot read {where} (its metadata is nested too deeply)"
            ) from exc
        except (ValueError, TypeError, OSError) as exc:
            raise ArchiveError(self.path, f"cannot read {where} ({first_line(exc)})") from exc
        self._nodes[parts] = node
        return node

    def prefetch(
        self,
        paths: Iterable[tuple[str, ...]],
        below: Mapping[tuple[str, ...], int] | None = None,
    ) -> None:
        """See :meth:`Store.prefetch`: concurrent reads of the nodes' metadata (URLs only).

        The store is listed first (once: its members and chunks come from that
        listing too), so a node it does not hold costs no request, and the nodes
        ``below`` are found in it.
        """
        if self._local is not None:
            return  # local files: nothing to gain
        wanted = list(paths)
        if is_url(self.path):
            if self._all_keys is None:
                with contextlib.suppress(Exception):  # raised again where it is needed
                    self._keys("")
            if below and self._all_keys is not None:
                wanted += _nodes_below(self._all_keys, below)
        wanted = [
            parts
            for parts in dict.fromkeys(wanted)
            if parts and parts not in self._nodes and all(map(is_member_name, parts))
        ]
        if not wanted:
            return
        limit = asyncio.Semaphore(_PREFETCH_CONCURRENCY)

        async def fetch(parts: tuple[str, ...]) -> None:
            async with limit:
                try:
                    self._nodes[parts] = await self._root.getitem("/".join(parts))
                except KeyError:
                    self._nodes[parts] = None
                except Exception:
                    pass  # asked for again by _node, which raises it properly

        async def fetch_all() -> None:
            await asyncio.gather(*(fetch(parts) for parts in wanted))

        with contextlib.suppress(Exception):
            run(fetch_all())

    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self._node(parts)
        return dict(node.attrs) if node is not None else {}

    def refresh(self) -> bool:
        if is_url(self.path):
            self._store.listed = None  # the listing is of the store as it was
        try:  # the root's document again (zarr keeps the attributes it first read)
            self._root = run(_open_root(self._store))
        except ArchiveError:
            raise
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise ArchiveError(
                self.path, f"cannot read the store again ({first_line(exc)})"
            ) from exc
        # Nodes and the listing were read as the store was: a following reader reads
        # them again (an array the writer grew or trimmed has a new length).
        self._nodes.clear()
        self._all_keys = None
        return True

    def refresh_array(self, array: Any, parts: tuple[str, ...], n_rows: int | None) -> Any:
        # An array's metadata (its length) is read when it is opened: open it again
        # when the writer may have made it longer (or shorter, trimming at close).
        if n_rows is not None and array.shape[0] >= n_rows:
            return array
        self._nodes.pop(parts, None)  # its metadata as read before: read it again
        fresh = self.array(parts)
        if fresh is None:
            raise ArchiveError(self.path, f"/{'/'.join(parts)} has gone")
        return fresh

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        from zarr import AsyncArray, AsyncGroup

        if isinstance(node, AsyncGroup):
            return "group"
        return "array" if isinstance(node, AsyncArray) else "other"

    def array(self, parts: tuple[str, ...]) -> Any:
        node = self._node(parts)
        if node is not None and self.kind(parts) == "array":
            self.guard.register(node, decoded_chunk_bytes(node))
        return node

    def read(self, array: Any, selection: Any) -> np.ndarray:
        return np.asarray(run(array.getitem(selection)))

    def members(self, parts: tuple[str, ...]) -> list[str]:
        """Names in the group's folder, but its metadata and hidden entries.

        Anything that is not a group or an array (a ``.partial`` file an interrupted
        writer left, a stray file) is sorted out by :meth:`Store.children`, quietly
        (zarr's own listing warns about each).
        """
        where = "/" + "/".join(parts)
        for name in parts:
            _check_member_name(self.path, name, where)
        prefix = "/".join(parts)
        try:
            if self._local is not None:
                names = self._local.names(prefix)
            elif is_url(self.path):
                # From the store's one listing (see _keys), not a listing of its own.
                below = f"{prefix}/" if prefix else ""
                children = (key[len(below) :].split("/", 1)[0] for key in self._keys(below))
                names = list(dict.fromkeys(name for name in children if name))  # "dir/" markers
            else:

                async def listing() -> list[str]:
                    return [key async for key in self._store.list_dir(prefix)]

                names = run(listing())
        except ArchiveError:
            raise
        except (ValueError, TypeError, OSError) as exc:
            raise ArchiveError(self.path, f"cannot list {where} ({first_line(exc)})") from exc
        return sorted(
            decode_member_name(self.path, name, where)
            for name in names
            if name != "zarr.json" and not name.startswith(".")
        )

    def chunk_shape(self, array: Any) -> tuple[int, ...]:
        # With sharding, a shard is the unit of I/O; read whole shards.
        return tuple(int(n) for n in (array.shards or array.chunks))

    def fill_value(self, array: Any) -> Any:
        return array.metadata.fill_value

    def absent_is_lost(self, array: Any) -> bool:
        """Only where the fill value is NaN: zarr leaves out chunks equal to any other."""
        try:
            return bool(np.isnan(self.fill_value(array)))
        except (TypeError, ValueError):
            return False

    def _keys(self, prefix: str) -> list[str]:
        """Every stored key below ``prefix`` (relative to the store's root).

        In object storage the whole store is listed once (the listing is paged the
        same way), not once per array: one round trip instead of one per array.
        """
        if self._local is not None:
            return list(self._local.walk(prefix))

        async def listing(prefix: str) -> list[str]:
            return [key async for key in self._store.list_prefix(prefix)]

        if not is_url(self.path):  # zarr's own LocalStore (no openat here)
            return run(listing(prefix))
        if self._all_keys is None:
            self._all_keys = sorted(run(listing("")))
            # Listed after the root's document was read, so it holds every node and
            # chunk of the checkpoints that document counts (the writer stores them
            # first): a node whose document is not listed is absent, without asking.
            self._store.listed = frozenset(self._all_keys)
        # Sorted: the keys below a prefix are one run of them (not a scan of the whole
        # listing per array, which grew as arrays times keys).
        keys = self._all_keys
        first = last = bisect.bisect_left(keys, prefix)
        while last < len(keys) and keys[last].startswith(prefix):
            last += 1
        return keys[first:last]

    def absent_ranges(self, array: Any, n_rows: int, start: int = 0) -> np.ndarray:
        """See :meth:`Store.absent_ranges`: one listing of the array's keys.

        The listed keys are decoded into storage-grid indices (the specification's
        key encodings); a block of rows is present when all its chunks (or shards)
        along the other axes are.
        """
        shape = tuple(int(n) for n in array.shape)
        n_rows = min(n_rows, shape[0]) if shape else 0
        if n_rows <= 0:
            return np.zeros((0, 2), dtype=np.int64)
        grid_shape = self.chunk_shape(array)
        prefix = f"{array.path}/" if array.path else ""
        counts: dict[int, int] = {}
        parse = chunk_key_parser(array)
        for key in self._keys(prefix):
            index = parse(key[len(prefix) :])
            if index is not None:
                counts[index[0]] = counts.get(index[0], 0) + 1
        per_block = int(
            np.prod(
                [-(-size // step) for size, step in zip(shape[1:], grid_shape[1:], strict=True)],
                dtype=np.int64,
            )
        )
        present = [block for block, n in counts.items() if n >= per_block]
        ranges = gaps(present, -(-n_rows // grid_shape[0]), grid_shape[0], n_rows)
        return clip_ranges(ranges, start, n_rows)

    def read_error(self, exc: BaseException) -> str:
        if isinstance(exc, MemoryError):
            return f"not enough memory ({first_line(exc)})"
        return f"corrupt or missing chunk ({first_line(exc)})"

    def close(self) -> None:
        """Release the store folder (zarr holds no open file between reads)."""
        if self._local is not None:
            self._local.release()

    def size_on_disk(self) -> int | None:
        if self._local is None:
            return None
        try:
            return self._local.size()
        except OSError:
            return None  # a link or special file inside is refused (ArchiveError), not hidden


def _guarded_store_class() -> type:
    """``WrapperStore`` subclass that passes every value read through a :class:`DecodeGuard`."""
    from zarr.storage import WrapperStore

    class GuardedStore(WrapperStore):  # type: ignore[type-arg, unused-ignore]  # generic in some zarr versions
        def __init__(self, store: Any, guard: DecodeGuard) -> None:
            super().__init__(store)
            self._guard = guard
            #: Every key of the store as listed (``None``: not listed): a metadata
            #: document absent from it is not asked for (see ZarrStore._keys).
            self.listed: frozenset[str] | None = None

        async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
            listed = self.listed
            if listed is not None and key not in listed:
                if key.rpartition("/")[2] in _METADATA_KEYS:
                    return None  # a node that is not there (zarr asks for each it may find)
            if prototype is None:
                from zarr.buffer import default_buffer_prototype

                prototype = default_buffer_prototype()
            value = await self._store.get(key, prototype, byte_range)
            if value is not None:
                self._guard.check(key, value.to_bytes())
            return value

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
            return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    return GuardedStore


def _GuardedStore(store: Any, guard: DecodeGuard) -> Any:
    return _guarded_store_class()(store, guard)
