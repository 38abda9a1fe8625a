"""Whether the files a warm server's code came from may have changed, told by Linux's
inotify at the cost of one system call.

Before each command, the warm server (:mod:`wfx.server`) makes sure its code is still
what is installed: the identity (modification time, size, inode) of every file it
imported, some 280 `stat` calls and about 2 ms on the path of every command. A
:class:`CodeWatch` lets it skip that check when nothing happened to any directory entry
that the resolution of one of those paths goes through: each directory on the way, each
symbolic link and what it points to, and the file itself. A change to any of them (an
edit in place, an editor's save by rename, a `touch`, a package reinstalled, a symbolic
link swapped above the installation) comes as an event, and the next command has the
full check again.

The runtime keeps the answers of PATH searches the same way (wfx.runtime.direct): a
search is done again only after an event on its way.

Where inotify cannot tell, the full check runs for every command, as without a watch:
  - a file system whose files may change from elsewhere (NFS, SMB, FUSE...): only the
    local kinds in :data:`LOCAL` are trusted;
  - a path that cannot be watched (inside a zip file; out of watches or instances);
  - for one command: an event queue that overflowed, more events queued than one read
    of 16 KB takes, or a read that failed.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterable, Iterator
from typing import Any

#: the file systems whose every change is made through this kernel, so inotify sees it
LOCAL = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "tmpfs",
        "ramfs",
        "overlay",
        "zfs",
        "f2fs",
        "bcachefs",
        "jfs",
        "reiserfs",
        "nilfs2",
        "squashfs",
        "erofs",
        "iso9660",
    }
)

#: every change to a directory's entries, to the files they name, or to itself (inotify's
#: IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE,
#: IN_DELETE_SELF, IN_MOVE_SELF), on directories only (IN_ONLYDIR)
_MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x01000000
#: what happens to a watched directory itself (IN_ATTRIB, IN_DELETE_SELF, IN_MOVE_SELF,
#: IN_UNMOUNT, IN_IGNORED): always a change
_ABOUT_ITSELF = 0x4 | 0x400 | 0x800 | 0x2000 | 0x8000
#: the event queue overflowed: events were lost
_OVERFLOW = 0x4000

#: the most bytes of queued events read at a command: a directory on the way so busy
#: that more may be queued counts as a change (parsing them would cost more than a check)
_READ_AT_MOST = 16384
#: the largest event inotify reports: its header and a name of NAME_MAX bytes, ended
_LARGEST_EVENT = 16 + 256

#: as many symbolic links as Linux follows in one path
_MAX_LINKS = 40


class _UnwatchableError(Exception):
    """A path inotify cannot vouch for."""


class CodeWatch:
    """inotify watches on every directory entry the resolution of some paths goes through.

    :meth:`unchanged` is True when none of them changed since the last call that said
    False; that call means the caller is to check every path itself, right after it (a
    change before that check is found by it, a change after it by the watch)."""

    def __init__(self) -> None:
        self._paths: tuple[str, ...] = ()
        self._inotify: Any = None
        self._names: dict[int, frozenset[str]] = {}
        self._due = True
        #: whether events are queued on the instance, without reading them
        self._queued = select.poll()

    def watch(self, paths: Iterable[str]) -> None:
        """Watch `paths` (relative ones from the working directory, as `stat` takes them)
        from now on, in place of any watched before; the next :meth:`unchanged` is False."""
        self._paths = tuple(sorted({os.path.abspath(path) for path in paths}))
        self._arm()

    def unchanged(self) -> bool:
        """Whether no watched entry changed since the last call that said False (or since
        :meth:`watch`). False whenever the watch cannot tell."""
        inotify = self._inotify
        if inotify is None:
            return False
        if not self._due and not self._queued.poll(0):
            return True  # nothing queued: no event at all (a `poll`, not a failed `read`)
        try:
            queued = os.read(inotify.fileno(), _READ_AT_MOST)
        except BlockingIOError:
            queued = b""
        except OSError:
            self.close()
            return False
        # a read that may have left events behind counts as a change, unparsed
        behind = len(queued) > _READ_AT_MOST - _LARGEST_EVENT
        if behind or any(map(self._matters, _events(queued))):
            self._arm()  # watched again from the top: a link or directory may be new
        elif not self._due:
            return True
        self._due = False
        return False

    @property
    def watching(self) -> bool:
        """Whether inotify watches every path (else each command needs the full check)."""
        return self._inotify is not None

    def close(self) -> None:
        """Stop watching (in the server's forks, and when the server ends)."""
        inotify, self._inotify = self._inotify, None
        self._names = {}
        self._due = True
        if inotify is not None:
            inotify.close()

    def _matters(self, event: Any) -> bool:
        wd, mask, name = event.wd, event.mask, event.name
        if wd < 0 or mask & _OVERFLOW:
            return True
        if wd not in self._names:  # a directory watched before, no longer on the way
            return False
        if not name:
            return bool(mask & _ABOUT_ITSELF)
        return name in self._names[wd]

    def _arm(self) -> None:
        # the instance is kept, with its watches (renewed below, the others ignored):
        # closing one waits on the kernel, 11 ms
        inotify, self._inotify = self._inotify, None
        self._names = {}
        self._due = True
        try:
            if inotify is None:
                from inotify_simple import INotify  # noqa: PLC0415 - Linux only

                inotify = INotify(nonblocking=True)
                self._queued = select.poll()
                self._queued.register(inotify.fileno(), select.POLLIN)
            else:
                _drain(inotify.fileno())  # what came before is the caller's full check's
        except (ImportError, OSError):  # not Linux, out of instances: the full check always
            return
        wanted: dict[str, set[str]] = {}
        names: dict[int, set[str]] = {}
        try:
            for directory, name in _lookups(self._paths):
                wanted.setdefault(directory, set()).add(name)
            types = _file_system_types()
            for directory, found in wanted.items():
                if types.get(os.stat(directory).st_dev) not in LOCAL:
                    raise _UnwatchableError(directory)
                names.setdefault(inotify.add_watch(directory, _MASK), set()).update(found)
        except (OSError, _UnwatchableError):
            inotify.close()
            return
        self._inotify = inotify
        self._names = {wd: frozenset(found) for wd, found in names.items()}
        self._due = True


def _drain(fd: int) -> None:
    """Read, unparsed, every event queued on the non-blocking inotify descriptor `fd`."""
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        return


def _events(queued: bytes) -> list[Any]:
    """The inotify events in `queued` (whole events, as one read returns them)."""
    if not queued:
        return []
    from inotify_simple import parse_events  # noqa: PLC0415 - Linux only

    return list(parse_events(queued))


def resolution(path: str) -> list[tuple[str, str]]:
    """Each (directory, name) the kernel looks up to resolve the absolute `path`, symbolic
    links followed as it follows them, up to the first name that does not exist: a change
    to any of them can change what `path` names, and nothing else can."""
    return _walk(path.split("/"), "/", {})[0]


def _walk(
    parts: list[str], start: str, links: dict[str, str | None]
) -> tuple[list[tuple[str, str]], str | None]:
    """The (directory, name) pairs looked up to resolve `parts` from the directory
    `start`, and where they lead (None: to a name that does not exist). `links` remembers
    what each name looked up is, across the walks of one watch: a link's target, "" for
    anything else, None for nothing."""
    pending = [part for part in parts if part]
    current = start
    looked_up: list[tuple[str, str]] = []
    followed = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        looked_up.append((current, name))
        candidate = os.path.join(current, name)
        if candidate not in links:
            links[candidate] = _link_target(candidate)
        target = links[candidate]
        if target is None:
            return looked_up, None
        if not target:  # not a link: a directory on the way, or the file itself
            current = candidate
            continue
        followed += 1
        if followed > _MAX_LINKS:
            raise _UnwatchableError("/".join(parts))
        if target.startswith("/"):
            current = "/"
        pending[:0] = [part for part in target.split("/") if part]
    return looked_up, current


def _lookups(paths: Iterable[str]) -> Iterator[tuple[str, str]]:
    """The (directory, name) pairs of the resolution of every path, each directory
    resolved once for all the files in it (a module's package holds dozens)."""
    links: dict[str, str | None] = {}
    folders: dict[str, tuple[list[tuple[str, str]], str | None]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        if folder not in folders:
            folders[folder] = _walk(folder.split("/"), "/", links)
        looked_up, where = folders[folder]
        yield from looked_up
        if where is not None:
            yield from _walk([name], where, links)[0]


def _link_target(path: str) -> str | None:
    """What the symbolic link `path` points to; "" when it is not a link, None when it
    does not exist."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def _file_system_types() -> dict[int, str]:
    """The type of each mounted file system, by device number (`st_dev`)."""
    types: dict[int, str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            fields = line.split()
            if " - " not in line or len(fields) < 3:
                continue
            major, _, minor = fields[2].partition(":")
            kind = line.split(" - ", 1)[1].split()[0]
            types[os.makedev(int(major), int(minor))] = kind
    return types
