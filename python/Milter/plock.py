"""Milter.plock.PLock: update a file the way /etc/passwd is updated
(pymilter's API).

lock() creates BASENAME.lock exclusively (O_EXCL, so only one writer at a
time) and returns it open for writing; the caller writes the whole new
version there and commit() renames it over BASENAME, so readers see either
the old file or the new one, never a half-written one.  unlock() abandons
the update and removes the lock file.
"""
import os
import time

__all__ = ['PLock']


class PLock(object):
    """Lock, write, rename transaction on one file."""

    def __init__(self, basename):
        self.basename = basename
        self.fp = None

    def lock(self, lockname=None, mode=0o660, strict_perms=False):
        """Start an update: create the lock file (OSError if it exists) and
        return it open for writing.  It gets the permission bits of the
        current file as well as mode, and its group.  A failure to set the
        group is ignored unless strict_perms."""
        self.unlock()
        self.lockname = lockname or self.basename + '.lock'
        try:
            st = os.stat(self.basename)
        except OSError:
            st = None
        else:
            mode |= st.st_mode
        # Group-writable when mode says so, whatever the process umask.
        old = os.umask(0o002)
        try:
            fd = os.open(self.lockname, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         mode & 0o7777)
        finally:
            os.umask(old)
        self.fp = os.fdopen(fd, 'w')
        try:
            if st is None:
                raise OSError('%s: no file to take the group from'
                              % self.basename)
            os.chown(self.lockname, -1, st.st_gid)
        except OSError:
            if strict_perms:
                self.unlock()
                raise
        return self.fp

    def wlock(self, lockname=None):
        """lock(), waiting (2 s between tries) while another writer holds
        the lock."""
        while True:
            try:
                return self.lock(lockname)
            except OSError:
                time.sleep(2)

    def commit(self, backname=None):
        """Replace the file by what was written; with backname, the old
        version stays reachable under that name (a hard link)."""
        if not self.fp:
            raise IOError('File not locked')
        self.fp.close()
        self.fp = None
        if backname:
            try:
                os.remove(backname)
            except OSError:
                pass
            os.link(self.basename, backname)
        os.rename(self.lockname, self.basename)

    def unlock(self):
        """Abandon the update in progress, if any."""
        if self.fp:
            try:
                self.fp.close()
            except Exception:
                pass
            self.fp = None
            os.remove(self.lockname)
