"""Writing a source file back without ever leaving it half written."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the content of `path` with `data`, all or nothing.

    The bytes go to a temporary file in the same folder, are flushed to disk (fsync), get the
    file's mode bits (and owner, where allowed), then replace it in one rename: a write that
    fails part-way (disk full, quota, file size limit) leaves the original as it was. A
    symlink is followed, so the link stays a link. A file without write permission is left
    alone. Raises OSError, with the file named, on any failure.
    """
    target = Path(os.path.realpath(path))
    status = target.stat()
    if not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, "the file is read-only", str(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".qlint-tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, stat.S_IMODE(status.st_mode))
        if hasattr(os, "chown") and (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(temporary, status.st_uid, status.st_gid)
            except OSError:
                pass  # not ours to give away; the content and mode bits are what matter
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
