"""What-if for ``bench/files/run.py --what-if-blob-writer``: ``suite`` with one method patched.

Not the product as shipped (the bench says so in its first line). It patches
``suite.storage.blobs._DiskWriter.write`` (the blob store is not the files service's code) to show
what the upload path gains from two changes there:

1. the SHA-256 update moves into the worker thread that writes the block (hashlib releases the GIL
   for large buffers), so the event loop is free to receive the next block meanwhile;
2. every ``FLUSH_EVERY`` bytes, ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` starts the disk write-back
   of what was just written (it does not wait), so the disk works while the body still arrives and
   the fsync at commit finds little left to do — the way dd's ``conv=fdatasync`` pays one flush only
   because it writes faster than the disk.

Durability is unchanged: commit still fsyncs the file, renames it and fsyncs the folder.

    python bench/files/whatif_blob_writer.py serve --only gateway
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys

FLUSH_EVERY = 8 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>

_libc = ctypes.CDLL(None, use_errno=True)
_sfr = getattr(_libc, "sync_file_range", None)
if _sfr is not None:
    _sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def patch() -> None:
    from suite.storage import blobs

    def _write_hash(self, data) -> None:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        done = getattr(self, "_wi_flushed", 0)
        if _sfr is not None and self.size - done >= FLUSH_EVERY:
            _sfr(self._fd, done, self.size - done, SYNC_FILE_RANGE_WRITE)
            self._wi_flushed = self.size

    async def write(self, data) -> None:
        if not data:
            return
        self.size += len(data)
        if len(data) < 16 * 1024:
            _write_hash(self, data)
        else:
            await asyncio.to_thread(_write_hash, self, data)

    blobs._DiskWriter.write = write


if __name__ == "__main__":
    patch()
    from suite.cli import main

    sys.exit(main())
