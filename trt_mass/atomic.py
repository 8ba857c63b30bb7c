"""The one way trt_mass writes a file: whole or not at all, and still there after a crash.

Every writer (results, overlays, DICOM objects, status and error reports, engine sidecars, engines,
timing caches, calibration manifests and caches, exported and quantized models, checkpoints,
reports, synthetic phantoms) goes through `atomic_path` or `write_atomic`:

  1. a temporary file in the target's folder, named `.NAME.<random>.tmp[SUFFIX]` (a dotfile: the watch
     daemon and folder scans ignore it, and the daemon removes leftovers on start), created with
     O_EXCL and the usual permissions (0666 minus the umask, like any new file);
  2. the content is written and fsync'd;
  3. os.replace renames it over the target (atomic within one filesystem: a reader sees the old file
     or the new one, never a part);
  4. the folder is fsync'd, so that the rename itself survives a power cut (POSIX; skipped where a
     folder cannot be opened, as on Windows).

A file handed from one folder to another where others write too (incoming/) goes by
`move_without_replacing`: a hard link that fails on an existing name, then the unlink of the source.

On any error the temporary file is removed and the target is left as it was.  A target that is a
symlink is written where the link points (the link stays); one that exists keeps its permissions; one
that is not a regular file (/dev/stdout, a FIFO) is written in place, as nothing can be renamed over it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

TEMPORARY_MARK = ".tmp"


def _create_temporary(path: Path, suffix: str) -> Path:
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_MARK}{suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename (or a new name) in `folder` durable; a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a folder; the rename stands
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write with any writer (onnx.save, PIL, torch.save, ...).

    When the block ends without an error the file is fsync'd and renamed over `path`, and the folder
    fsync'd; on an error it is removed.  `suffix` is appended to the temporary name for writers that
    choose a format by the file's ending (e.g. ".onnx").
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        yield path
        return
    temporary = _create_temporary(path, suffix)
    try:
        if path.exists():
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically and durably (see the module docstring)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, document: Any, *, sort_keys: bool = False) -> None:
    """`document` as indented JSON with a final newline."""
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=sort_keys) + "\n")


def refuse_overwriting(outputs: dict[str, Path | None], inputs: dict[str, Any]) -> None:
    """ConfigError when an output option names an input file, or two outputs name one file.

    `outputs`: option -> path (None: not given).  `inputs`: what it reads -> a path or an iterable of paths.
    Files are compared as files (a symlink or another spelling of the path is the same file).
    """
    from trt_mass.errors import ConfigError

    given = [(option, Path(path)) for option, path in outputs.items() if path is not None]
    for index, (option, path) in enumerate(given):
        for other_option, other in given[index + 1:]:
            if _same_file(path, other):
                raise ConfigError(f"{option} and {other_option} both name {path}: one would overwrite the other")
        for what, files in inputs.items():
            for candidate in [files] if isinstance(files, (str, Path)) else (files or []):
                if candidate is not None and _same_file(path, Path(candidate)):
                    raise ConfigError(f"{option} {path} is {what}: writing it would destroy the input")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# What os.link raises where a filesystem has no hard links (vfat, some SMB mounts).
LINKLESS_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


def numbered_names(folder: Path, name: str, kept_suffixes: tuple[str, ...]) -> Iterator[Path]:
    """folder/name, then folder/stem.1.suffix, stem.2.suffix, ... (a suffix in `kept_suffixes` stays last,
    so that a reader still knows the file; other names are numbered at the end)."""
    suffix = Path(name).suffix
    stem, suffix = (name[: -len(suffix)], suffix) if suffix and suffix.lower() in kept_suffixes else (name, "")
    yield folder / name
    for number in itertools.count(1):  # a number must not push a long name past the 255-byte limit
        yield folder / fitting_name(stem, f".{number}{suffix}", budget=NAME_MAX_BYTES)


def move_without_replacing(path: Path, targets: Iterable[Path]) -> Path:
    """Move `path` to the first of `targets` that is free; returns where it went.

    A rename replaces what it lands on: a file a writer dropped at the name between a check and the
    rename would be lost.  A hard link fails on an existing name instead, and the source is unlinked
    after it.  A target that already is this file (a move that a crash or a second caller half made)
    completes the move rather than making a second copy.  Without hard links it falls back to
    check-then-rename.  FileNotFoundError when `path` is gone (another caller moved it).
    """
    links = True
    for target in targets:
        if os.path.lexists(target) and os.path.samefile(path.parent, target.parent) and path.name == target.name:
            return target  # already there: unlinking the "source" would delete the only copy
        if links:
            try:
                os.link(path, target, follow_symlinks=False)
            except FileExistsError:
                if _same_inode(path, target):
                    path.unlink(missing_ok=True)
                    return target
                continue
            except OSError as error:
                if error.errno not in LINKLESS_ERRNOS:
                    raise
                links = False
            else:
                path.unlink(missing_ok=True)
                return target
        if not os.path.lexists(target):
            os.replace(path, target)
            return target
    raise FileExistsError(f"no free name to move {path} to")


# A name plus what the writers add (".<8 random>.tmp" and a suffix of a temporary; ".error.json",
# ".overlay.png" beside a result) must stay under the 255 bytes most filesystems allow.
NAME_BUDGET_BYTES = 180
NAME_MAX_BYTES = 255


def fitting_name(name: str, suffix: str = "", budget: int = NAME_BUDGET_BYTES) -> str:
    """`name + suffix`, or, when that is over `budget` bytes, name cut short with "~" and 12 hex digits of
    its SHA-256 (distinct names stay distinct), then the suffix."""
    # surrogateescape: a name that is not UTF-8 (bytes from a Windows share) arrives with surrogates
    if len((name + suffix).encode(errors="surrogateescape")) <= budget:
        return name + suffix
    import hashlib

    raw = name.encode(errors="surrogateescape")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    room = budget - len(suffix.encode(errors="surrogateescape")) - len(digest) - 1
    cut = raw[:room].decode(errors="surrogateescape")
    return f"{cut}~{digest}{suffix}"


def _same_inode(first: Path, second: Path) -> bool:
    try:
        return os.path.samestat(os.lstat(first), os.lstat(second))
    except FileNotFoundError:
        return False
