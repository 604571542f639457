"""Reading and writing .npz archives (NumPy's zip of .npy arrays) safely: what checkpoints and
LoRA adapter files are made of.

np.load is not used for reading, because a file may come from anywhere: it would allocate
whatever shape a member's header declares (a 20-byte header can ask for terabytes), unpickle
object arrays if allowed, and inflate a compressed member of any size. `read_arrays` accepts
only uncompressed .npy members of plain numeric dtypes, each exactly the size its header's
shape implies, together no larger than the file.

Writes are atomic and durable: the archive goes to a temporary file in the same folder, is
flushed to disk (fsync), then renamed over the old file, and the folder entry is flushed too.
An interrupted save leaves the previous file intact and, at worst, a `tmp*.tmp` file that
`remove_orphaned_temps` clears.
"""
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

NUMERIC_KINDS = "fiu"  # float, signed and unsigned integer arrays; nothing else is read


class ArchiveError(ValueError):
    """An archive that is not a plain, uncorrupted .npz of numeric arrays."""


# --- writing -------------------------------------------------------------------------------


def write_atomic(path, arrays):
    """np.savez to a temporary file, fsync, rename over `path`, fsync the directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="tmp", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
        fsync_dir(path.parent)  # and the rename itself survives a power cut
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fsync_dir(folder):
    """Flush a folder's entries (a rename in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_orphaned_temps(folder):
    """Delete the temporary files (`tmp*.tmp`) of saves that were killed before their rename.
    Called when a run takes its folder's lock, so no save of another process can be in
    progress there. Returns the names removed."""
    removed = []
    for tmp in Path(folder).glob("tmp*.tmp"):
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return sorted(removed)


# --- reading -------------------------------------------------------------------------------


def read_arrays(path, only=None):
    """{member name without .npy: array}; every member checked before its data is read.
    `only`, a collection of names, reads just those members (the rest are still checked)."""
    try:
        size = os.path.getsize(path)
        arrays = {}
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            # Members may overlap (each read separately, a zip bomb that needs no compression):
            # together they must fit in the file, as np.savez's members do.
            if sum(info.compress_size for info in infos) > size:
                raise ArchiveError("its members claim more bytes than the file has")
            for info in infos:
                name = _member_name(info, size)
                if name in arrays:
                    raise ArchiveError(f"member {info.filename!r} appears twice")
                if only is not None and name not in only:
                    continue
                with archive.open(info) as f:
                    arrays[name] = _read_npy(f, info)
        return arrays
    except ArchiveError:
        raise
    except OSError as e:
        raise ArchiveError(f"not a readable archive: {e.strerror or e}") from None
    except (EOFError, ValueError, zipfile.BadZipFile, NotImplementedError) as e:
        raise ArchiveError("not a readable archive (truncated or corrupt?): "
                           + " ".join(str(e).split())) from None


def _member_name(info, archive_size):
    # np.savez writes each array as an uncompressed `name.npy`; its size is then bounded by
    # the archive's, which is what makes reading it safe. Nothing else is accepted.
    if not info.filename.endswith(".npy"):
        raise ArchiveError(f"member {info.filename!r} is not a .npy array")
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ArchiveError(f"member {info.filename!r} is compressed or encrypted")
    if (info.file_size != info.compress_size
            or info.header_offset + info.compress_size > archive_size):
        raise ArchiveError(f"member {info.filename!r} claims more bytes than the file has")
    return info.filename[:-4]


def _read_npy(f, info):
    """One .npy member: header, then exactly the bytes its shape and dtype account for."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ArchiveError(f"member {info.filename!r} has .npy version {version}")
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read_header(f)
    if dtype.kind not in NUMERIC_KINDS or any(n < 0 for n in shape):
        raise ArchiveError(f"member {info.filename!r} is a {dtype} array of shape {shape}, "
                              "not a numeric array")
    count = math.prod(shape)
    if f.tell() + count * dtype.itemsize != info.file_size:
        raise ArchiveError(f"member {info.filename!r}: its header's shape {shape} does "
                              f"not match its size of {info.file_size} bytes")
    out = np.empty(count, dtype=dtype)  # (count,), at most the member's size
    if f.readinto(out.view(np.uint8)) != out.nbytes:
        raise ArchiveError(f"member {info.filename!r} is cut short")
    return out.reshape(shape[::-1]).T if fortran_order else out.reshape(shape)
