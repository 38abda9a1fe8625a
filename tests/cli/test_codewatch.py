"""The warm server's watch on its code (wfx.codewatch, docs/server.md "Changed code"):
every change that could make a file's identity differ is seen; nothing it cannot vouch
for is ever called unchanged."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wfx import codewatch
from wfx.codewatch import CodeWatch, resolution

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[CodeWatch, Path]]:
    """A watch on one module in a package directory, its first full check done."""
    package = tmp_path / "site" / "pkg"
    package.mkdir(parents=True)
    module = package / "mod.py"
    module.write_text("x = 1\n")
    watch = CodeWatch()
    watch.watch([str(module)])
    assert watch.watching
    assert not watch.unchanged()  # the full check that follows arming
    assert watch.unchanged()
    yield watch, module
    watch.close()


def _append(module: Path) -> None:
    with module.open("a") as file:
        file.write("y = 2\n")


def _touch(module: Path) -> None:
    info = module.stat()
    os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _saved_by_rename(module: Path) -> None:
    new = module.with_name(".mod.py.tmp")
    new.write_text("x = 3\n")
    os.replace(new, module)


def _deleted(module: Path) -> None:
    module.unlink()


def _directory_renamed(module: Path) -> None:
    package = module.parent
    package.rename(package.with_name("moved"))


def _directory_above_renamed(module: Path) -> None:
    site = module.parent.parent
    site.rename(site.with_name("elsewhere"))


def _truncated(module: Path) -> None:
    os.truncate(module, 0)


CHANGES: dict[str, Callable[[Path], None]] = {
    "edited in place": _append,
    "touched": _touch,
    "saved by rename": _saved_by_rename,
    "deleted": _deleted,
    "its directory renamed": _directory_renamed,
    "a directory above renamed": _directory_above_renamed,
    "truncated": _truncated,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_to_a_watched_file_is_seen(
    watched: tuple[CodeWatch, Path], change: Callable[[Path], None]
) -> None:
    watch, module = watched
    change(module)
    assert not watch.unchanged()


def test_after_a_change_the_next_one_is_seen_too(watched: tuple[CodeWatch, Path]) -> None:
    """A change makes the watch start over: the caller's full check, then quiet until the
    next change, which is seen like the first."""
    watch, module = watched
    _append(module)
    assert not watch.unchanged()
    assert watch.unchanged()
    _saved_by_rename(module)
    assert not watch.unchanged()


@pytest.mark.parametrize(
    "unrelated",
    [
        lambda module: (module.parent / ".mod.py.swp").write_text("editor"),
        lambda module: (module.parent / "__pycache__").mkdir(),
        lambda module: (module.parent.parent / "another_package").mkdir(),
        lambda module: (module.parent.parent.parent / "notes.txt").write_text("hi"),
    ],
    ids=["an editor's swap file", "__pycache__", "another package", "a file higher up"],
)
def test_other_changes_around_it_are_not_changes(
    watched: tuple[CodeWatch, Path], unrelated: Callable[[Path], object]
) -> None:
    watch, module = watched
    unrelated(module)
    assert watch.unchanged()


def test_a_symbolic_link_swapped_above_the_file_is_a_change(tmp_path: Path) -> None:
    """`current -> v1` becomes `current -> v2` (a release swapped by rename): the path
    names another file, though nothing in v1 changed."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "mod.py").write_text(f"version = {version!r}\n")
    (tmp_path / "current").symlink_to("v1")
    watch = CodeWatch()
    watch.watch([str(tmp_path / "current" / "mod.py")])
    assert not watch.unchanged()
    assert watch.unchanged()
    (tmp_path / "next").symlink_to("v2")
    os.replace(tmp_path / "next", tmp_path / "current")
    assert not watch.unchanged()
    watch.close()


def test_the_file_a_symbolic_link_leads_to_is_watched(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "mod.py").write_text("x = 1\n")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "mod.py").symlink_to(real / "mod.py")
    watch = CodeWatch()
    watch.watch([str(tmp_path / "linked" / "mod.py")])
    assert not watch.unchanged()
    assert watch.unchanged()
    _append(real / "mod.py")
    assert not watch.unchanged()
    watch.close()


def test_a_missing_file_is_watched_for_its_coming(tmp_path: Path) -> None:
    watch = CodeWatch()
    watch.watch([str(tmp_path / "not-yet.py")])
    assert not watch.unchanged()
    assert watch.unchanged()
    (tmp_path / "not-yet.py").write_text("x = 1\n")
    assert not watch.unchanged()
    watch.close()


def test_resolution_follows_links_as_the_kernel_does(tmp_path: Path) -> None:
    """Each directory entry looked up, links followed where they lead (relative to their
    directory, or from the root), `..` taken from where the resolution is."""
    top = os.path.realpath(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.py").write_text("")
    (tmp_path / "link").symlink_to("a/b")
    (tmp_path / "up").symlink_to(f"{top}/a/b/..")
    assert list(resolution(f"{top}/link/f.py"))[-4:] == [
        (top, "link"),
        (top, "a"),
        (f"{top}/a", "b"),
        (f"{top}/a/b", "f.py"),
    ]
    through_up = list(resolution(f"{top}/up/b/f.py"))
    assert (top, "up") in through_up
    assert through_up[-4:] == [
        (top, "a"),
        (f"{top}/a", "b"),
        (f"{top}/a", "b"),
        (f"{top}/a/b", "f.py"),
    ]


def test_a_file_system_it_cannot_vouch_for_means_the_full_check_every_time(
    watched: tuple[CodeWatch, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes on NFS, SMB or FUSE may come from another machine, which inotify never
    hears of: a path there is never called unchanged."""
    watch, module = watched
    monkeypatch.setattr(codewatch, "LOCAL", frozenset())
    watch.watch([str(module)])
    assert not watch.watching
    assert not watch.unchanged()
    assert not watch.unchanged()


def test_a_path_inside_a_file_is_never_called_unchanged(tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    watch = CodeWatch()
    watch.watch([str(archive / "mod.py")])
    assert not watch.watching
    assert not watch.unchanged()


def test_out_of_watches_means_the_full_check_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inotify_simple

    def no_more(*_args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inotify_simple.INotify, "add_watch", no_more)
    (tmp_path / "mod.py").write_text("")
    watch = CodeWatch()
    watch.watch([str(tmp_path / "mod.py")])
    assert not watch.watching
    assert not watch.unchanged()


def test_lost_events_are_a_change(watched: tuple[CodeWatch, Path]) -> None:
    """More events than the kernel queues (each one unrelated): some were lost, and
    one of those may have been a change."""
    watch, module = watched
    queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if queued > 100_000:
        pytest.skip("the queue is too long to fill quickly")
    other = module.parent / "other.txt"
    for _ in range(queued // 2 + 10):
        other.write_bytes(b"")
        other.unlink()
    assert not watch.unchanged()


def test_a_flood_of_unrelated_events_counts_as_a_change_and_is_not_parsed(
    watched: tuple[CodeWatch, Path],
) -> None:
    """More queued events than one read of 16 KB takes: telling them apart would cost more
    than the check itself, so it is a change; the watch starts over, quiet again."""
    watch, module = watched
    other = module.parent / "other.txt"
    for _ in range(400):  # 800 events of 32 bytes
        other.write_bytes(b"")
        other.unlink()
    assert not watch.unchanged()
    assert watch.unchanged()


def test_a_change_queued_behind_a_full_read_of_other_events_is_seen(tmp_path: Path) -> None:
    """511 unrelated events of 32 bytes, then the change (an event of 64 bytes, for the
    long name): one read of 16 KB takes the unrelated ones only, so the watch cannot
    know what is behind them, and says so."""
    module = tmp_path / ("a_module_with_a_rather_long_file_name_" + "x" * 3 + ".py")
    module.write_text("")
    watch = CodeWatch()
    watch.watch([str(module)])
    assert not watch.unchanged()
    other = tmp_path / "other.txt"  # an event of 32 bytes for each mkdir and rmdir
    for _ in range(255):
        other.mkdir()
        other.rmdir()
    other.mkdir()  # 511 events so far: 16,352 bytes
    _append(module)
    assert not watch.unchanged()
    watch.close()


def test_watching_other_paths_forgets_the_old_ones(tmp_path: Path) -> None:
    """`watch` again with other paths: the directories watched before (the kernel keeps
    them, closing the watch would cost 11 ms) no longer count."""
    for name in ("old", "new"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mod.py").write_text("")
    watch = CodeWatch()
    watch.watch([str(tmp_path / "old" / "mod.py")])
    watch.watch([str(tmp_path / "new" / "mod.py")])
    assert not watch.unchanged()
    _append(tmp_path / "old" / "mod.py")
    (tmp_path / "old").rename(tmp_path / "gone")
    assert watch.unchanged()
    _append(tmp_path / "new" / "mod.py")
    assert not watch.unchanged()
    watch.close()


def test_closed_it_says_nothing_is_known(watched: tuple[CodeWatch, Path]) -> None:
    watch, _module = watched
    watch.close()
    assert not watch.watching
    assert not watch.unchanged()
