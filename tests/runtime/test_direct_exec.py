"""The fast path for one simple command: exec'd without bash, with the same result.

A differential test: every case runs once through `bash -eo pipefail -c SCRIPT` and once
with the fast path offered, and the exit status, signal, output and environment the
program sees must be the same. A `bash` shim first on PATH records each start of bash, so
each case also asserts which way it ran: directly where the rule promises it, through
bash wherever bash would do something of its own (command not found, a script without
`#!`, start-up files, exported functions, a too-deep SHLVL).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from wfx.runtime.process import TOKEN_VARIABLE, run_process
from wfx.shell import simple_command

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="the fast path replaces bash")

SHOW = """#!/bin/sh
echo "args: $*"
echo "cwd: $(pwd -P)"
env | LC_ALL=C sort | grep -v '^{token}='
while read -r line; do case $line in Sig[IBC]*) echo "$line";; esac; done < /proc/$$/status
(cd /proc/$$/fd && echo "fds:" *)
[ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && echo "leads its session"
"""


def _with_bash(path: str) -> str:
    """`path` and, last, bash's folder: a step's own PATH must hold bash for the fast
    path to run its command (as bash itself must start)."""
    assert BASH is not None
    return f"{path}:{os.path.dirname(BASH)}"


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("direct")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "show", SHOW.format(token=TOKEN_VARIABLE))
    _executable(bin_dir / "exit3", "#!/bin/sh\necho leaving >&2\nexit 3\n")
    _executable(bin_dir / "selfterm", "#!/bin/sh\nkill -TERM $$\n")
    _executable(bin_dir / "noshebang", "echo from a script without a shebang line\n")
    (bin_dir / "notexec").write_text("#!/bin/sh\necho never\n")
    _executable(bin_dir / "badinterp", "#!/nonexistent/interpreter\n")
    fake = root / "fake"  # programs named as builtins: bash never runs them
    fake.mkdir()
    for builtin in ("true", "false"):
        _executable(fake / builtin, "#!/bin/sh\necho not the builtin\nexit 7\n")
    shim = root / "shim"
    shim.mkdir()
    _executable(shim / "bash", f'#!/bin/sh\necho "$*" >> {root}/bash.log\nexec {BASH} "$@"\n')
    work = root / "work"
    (work / "sub").mkdir(parents=True)
    _executable(work / "here", SHOW.format(token=TOKEN_VARIABLE))
    _executable(work / "sub" / "there", SHOW.format(token=TOKEN_VARIABLE))
    (root / "link").symlink_to(work)
    return root


def _base_env(world: Path) -> dict[str, str]:
    return {"PATH": f"{world}/shim:{world}/bin:/usr/bin:/bin", "LANG": "C"}


def _run(world: Path, script: str, env: dict[str, str], cwd: Path, direct: bool) -> tuple:
    lines: list[tuple[str, str]] = []
    log = world / "bash.log"
    log.unlink(missing_ok=True)

    async def go() -> object:
        return await run_process(
            ["bash", "-eo", "pipefail", "-c", script],
            env=env,
            cwd=str(cwd),
            timeout=10,
            kill_grace=1,
            on_output=lambda stream, line: lines.append((stream, line)),
            direct=simple_command(script) if direct else None,
        )

    outcome = anyio.run(go)
    through_bash = log.exists()
    # each stream in its order (the two are read concurrently: no order between them)
    streams = {
        name: [text for stream, text in lines if stream == name] for name in ("stdout", "stderr")
    }
    return (outcome.returncode, outcome.signal, streams), through_bash  # type: ignore[attr-defined]


#: variables bash drops from the environment it was given (PS1, PS2: not interactive)
BASH_DROPS = dict.fromkeys(
    (
        *("PS1", "PS2", "BASHPID", "BASH_COMMAND", "BASH_SUBSHELL", "BASH_VERSINFO"),
        *("COMP_WORDBREAKS", "HISTCMD", "PPID", "RANDOM"),
    ),
    "7",
)
#: variables bash sets to its own start-up values whatever it was given
BASH_RESETS = {"IFS": "x", "PS4": "x", "OPTIND": "5", "OPTERR": "0", "LINENO": "9"}
#: variables bash sets to what only bash knows (its path, version, the time it started),
#: or treats as its own only from 5.0 or 5.1 on (SRANDOM, BASH_ARGV0)
BASH_OWN = (
    *("BASH", "BASH_VERSION", "BASH_EXECUTION_STRING", "EPOCHSECONDS", "EPOCHREALTIME"),
    *("SRANDOM", "BASH_ARGV0"),
)

#: (script, extra environment, working directory under the world, runs without bash)
CASES: list[tuple[str, dict[str, str], str, bool]] = [
    ("true", {}, "work", True),
    ("false", {}, "work", True),
    ("true", {"PATH": "{world}/shim:{world}/fake:/usr/bin:/bin"}, "work", True),
    ("false", {"PATH": "{world}/shim:{world}/fake:/usr/bin:/bin"}, "work", True),
    ("show a b --c=d x,y 1%2 @z +q :r", {}, "work", True),
    ("  show   spaced\targs  \n", {}, "work", True),
    ("exit3", {}, "work", True),
    ("selfterm", {}, "work", True),
    ("./here from-cwd", {}, "work", True),
    ("sub/there nested", {}, "work", True),
    ("here", {"PATH": "{world}/shim:.:/usr/bin:/bin"}, "work", True),
    ("here", {"PATH": "{world}/shim::/usr/bin:/bin"}, "work", True),
    ("there", {"PATH": "{world}/shim:sub:/usr/bin:/bin"}, "work", True),
    ("show", {"PATH": "{world}/shim:{world}/bin/:/usr/bin:/bin"}, "work", True),
    ("{world}/bin/show absolute", {"ONLY": "this"}, "work", True),
    ("show", {"SHLVL": "3"}, "work", True),
    ("show", {"SHLVL": "abc"}, "work", True),
    ("show", {"SHLVL": "-5"}, "work", True),
    ("show", {"SHLVL": " 4"}, "work", True),
    ("show", {"SHLVL": "+2"}, "work", True),
    ("show", {"SHLVL": "007"}, "work", True),
    ("show", {"SHLVL": "0x5"}, "work", True),
    ("show", {"SHLVL": "998"}, "work", True),
    ("show", {"SHLVL": "999"}, "work", False),
    ("show", {"PWD": "{world}/link"}, "link", True),
    ("show", {"PWD": "{world}/link/"}, "link", True),
    ("show", {"PWD": "{world}/work"}, "link", True),
    ("show", {"PWD": "/"}, "link", True),
    ("show", {"PWD": "relative"}, "work", True),
    ("show", {"OLDPWD": "/"}, "work", True),
    ("show", {"OLDPWD": "/does/not/exist"}, "work", True),
    ("show", {"OLDPWD": "sub"}, "work", True),
    ("show", {"A-B": "1", "X.Y": "2", "EMPTY": ""}, "work", True),
    ("show", {"LC_ALL": "C"}, "work", True),
    ("show", {"LC_ALL": "POSIX"}, "work", True),
    ("show", {"LC_ALL": ""}, "work", True),
    ("show", {"LC_ALL": "xx_YY.UTF-8"}, "work", False),
    ("show", {"LC_ALL": "C", "LOCPATH": "{world}/work"}, "work", True),
    ("show", {"LC_ALL": "C.UTF-8", "LOCPATH": "{world}/work"}, "work", False),
    ("show", {"HOME": "{world}", "PATH": "{world}/shim:~/bin:/usr/bin:/bin"}, "work", False),
    # variables bash itself changes or drops when it finds them in its environment,
    # seen by `env` as the program gets them (a shell between would change them again)
    (f"env -u {TOKEN_VARIABLE}", BASH_DROPS, "work", True),
    (f"env -u {TOKEN_VARIABLE}", BASH_RESETS, "work", True),
    ("show", {"BASH_ENV": "{world}/work/here"}, "work", False),
    ("show", {"BASH_FUNC_show%%": "() {  echo from a function\n}"}, "work", False),
    ("show", {"SHELLOPTS": "xtrace"}, "work", False),
    ("missing-command", {}, "work", False),
    ("noshebang", {}, "work", False),
    ("notexec", {}, "work", False),
    ("badinterp", {}, "work", False),
    ("./sub", {}, "work", False),
]


@pytest.fixture
def inherited_descriptor() -> Iterator[int]:
    """A descriptor wfx inherited from its parent without close-on-exec (a make
    jobserver's, say): no step may see it, whichever way it is started."""
    opened = os.open(os.devnull, os.O_RDONLY)
    fd = os.dup2(opened, 200, inheritable=True)  # far above what a shell uses itself
    os.close(opened)
    yield fd
    os.close(fd)


@pytest.mark.parametrize(("script", "extra", "where", "direct"), CASES)
def test_the_fast_path_gives_what_bash_gives(
    world: Path,
    script: str,
    extra: dict[str, str],
    where: str,
    direct: bool,
    inherited_descriptor: int,
) -> None:
    """What the program sees is what bash gives it: arguments, directory, environment,
    signal dispositions, descriptors, session; and the exit status and output."""
    env = _base_env(world) | {k: v.replace("{world}", str(world)) for k, v in extra.items()}
    script = script.replace("{world}", str(world))
    cwd = world / where
    assert simple_command(script) is not None, "the case must be one the rule accepts"
    by_bash, ran_bash = _run(world, script, env, cwd, direct=False)
    fast, fast_ran_bash = _run(world, script, env, cwd, direct=True)
    assert ran_bash
    assert fast_ran_bash is not direct, "ran through bash" if direct else "skipped bash"
    if script.startswith("env "):  # the variables' order is bash's hash table's: not kept
        fast, by_bash = (
            (code, signal, {**streams, "stdout": sorted(streams["stdout"])})
            for code, signal, streams in (fast, by_bash)
        )
    assert fast == by_bash
    descriptors = [line for line in fast[2]["stdout"] if line.startswith("fds:")]
    assert all(str(inherited_descriptor) not in line.split() for line in descriptors)


@pytest.mark.parametrize(
    "script",
    [
        "echo hi",
        "true --help",
        "false --version",
        "true x",
        "%x",
        "%1 arg",
        "cd /tmp",
        "exec true",
        "A=1 show",
        "show $HOME",
        "show 'quoted'",
        'show "quoted"',
        "show *.txt",
        "show ~",
        "show a{b,c}",
        "show a; show b",
        "show a\nshow b",
        "show a | cat",
        "show a && show b",
        "show > file",
        "show # comment",
        "show\\ a",
        "time show",
        "! show",
        "[[ 1 ]]",
        "show (a)",
        "show `id`",
        "show a\r",
        "shöw",
        "",
    ],
)
def test_anything_but_one_plain_simple_command_goes_through_bash(script: str) -> None:
    assert simple_command(script) is None


def test_a_run_step_takes_the_fast_path_only_for_the_default_bash(tmp_path: Path) -> None:
    from wfx.runtime.actions import _direct_words

    assert _direct_words("make all", {}, None) == ("make", "all")
    assert _direct_words("make all", {}, "bash -eo pipefail") == ("make", "all")
    assert _direct_words("make all", {"WFX_EXPR_1": "x"}, None) is None
    assert _direct_words("make all", {}, "sh -e") is None
    assert _direct_words("make all", {}, "zsh") is None
    assert _direct_words("make all", {}, "bash -x") is None


@pytest.mark.parametrize("direct", [False, True])
def test_a_path_without_bash_fails_the_step_on_the_fast_path_too(world: Path, direct: bool) -> None:
    """A step whose own PATH has its command but no bash cannot start its shell: the
    fast path must not run the command all the same (wfx found bash on its own PATH)."""
    from wfx.runtime.process import ProcessStartError

    env = {"PATH": f"{world}/bin", "LANG": "C"}

    async def go() -> object:
        return await run_process(
            ["bash", "-eo", "pipefail", "-c", "show"],
            env=env,
            cwd=str(world / "work"),
            timeout=10,
            kill_grace=1,
            direct=simple_command("show") if direct else None,
        )

    with pytest.raises(ProcessStartError, match="bash"):
        anyio.run(go)


def test_the_environment_of_wfx_itself_reaches_a_direct_command(
    world: Path, tmp_path: Path
) -> None:
    env = dict(os.environ) | _base_env(world)
    fast, _ = _run(world, "show", env, world / "work", direct=True)
    by_bash, _ = _run(world, "show", env, world / "work", direct=False)
    assert fast == by_bash


@pytest.mark.parametrize("odd", ["fifo", "fifo-link"])
def test_an_executable_file_bash_stops_at_but_cannot_run_is_left_to_bash(
    tmp_path: Path, odd: str
) -> None:
    """bash's search of PATH stops at the first executable that is no directory, even one
    it cannot exec (a FIFO: its exec blocks; a device: 126). wfx must not pass over it
    and run the program further along PATH: the step goes to bash, which does as bash
    does (and a FIFO's wait is then bash's, which a timeout ends)."""
    from wfx.runtime.direct import direct_exec
    from wfx.runtime.spawn import Environment

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _executable(second / "tool", "#!/bin/sh\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o755)
    if odd == "fifo":
        fifo.rename(first / "tool")
    else:
        (first / "tool").symlink_to(fifo)
    env = Environment({"PATH": _with_bash(f"{first}:{second}")})
    assert direct_exec(["tool"], env, {}, str(tmp_path)) is None
    assert direct_exec([str(first / "tool")], env, {}, str(tmp_path)) is None
    (first / "tool").unlink()
    (first / "tool").mkdir()  # a directory: bash passes over it
    found = direct_exec(["tool"], env, {}, str(tmp_path))
    assert found is not None
    assert found[0] == f"{second}/tool"


def test_commands_started_together_share_their_lookups(tmp_path: Path) -> None:
    """Inside `looked_up_together` (a burst of steps starting at one instant) a name is
    looked up on PATH once; outside it, and after it, every lookup asks the file system
    again, as each bash would."""
    from wfx.runtime.direct import direct_exec, looked_up_together
    from wfx.runtime.spawn import Environment

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _executable(second / "tool", "#!/bin/sh\n")
    env = Environment({"PATH": _with_bash(f"{first}:{second}"), "OLDPWD": str(tmp_path / "old")})

    def program() -> str | None:
        found = direct_exec(["tool"], env, {}, str(tmp_path))
        return None if found is None else found[0]

    with looked_up_together():
        assert program() == f"{second}/tool"
        _executable(first / "tool", "#!/bin/sh\n")  # installed meanwhile: not seen
        assert program() == f"{second}/tool"
        with looked_up_together():  # a burst inside: its own lookups
            assert program() == f"{first}/tool"
        assert program() == f"{second}/tool"
    assert program() == f"{first}/tool"  # after the burst: found as bash would
    (first / "tool").unlink()
    (second / "tool").unlink()
    assert program() is None


def test_a_shared_lookup_keeps_what_bash_does_to_pwd_and_oldpwd(tmp_path: Path) -> None:
    from wfx.runtime.direct import direct_exec, looked_up_together
    from wfx.runtime.spawn import Environment

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    (tmp_path / "here").mkdir()
    env = Environment(
        {"PATH": _with_bash(str(tmp_path / "bin")), "OLDPWD": "gone", "PWD": "/elsewhere"}
    )
    alone = direct_exec(["tool"], env, {}, str(tmp_path / "here"))
    with looked_up_together():
        together = [direct_exec(["tool"], env, {}, str(tmp_path / "here")) for _ in range(2)]
    assert alone is not None
    assert alone[1]["PWD"] == str(tmp_path / "here")
    assert alone[1]["OLDPWD"] is None  # bash drops an OLDPWD that names no directory
    assert together == [alone, alone]


# -- PATH lookups kept while inotify says nothing on their way changed ---------------------


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A fresh set of watched lookups for the test, and the places each search looked at
    (an answer from memory looks at none)."""
    from wfx.runtime import direct

    looked: list[str] = []
    real = direct._bash_picks

    def counting(path: str) -> bool | None:
        looked.append(path)
        return real(path)

    monkeypatch.setattr(direct, "_bash_picks", counting)
    monkeypatch.setattr(direct, "_LOOKUPS", None)
    monkeypatch.setattr(direct, "_DUE", 0)  # armed at the first moment offered
    monkeypatch.setattr(direct, "_DUE_COLD", 0)
    yield looked
    if direct._LOOKUPS is not None:
        direct._LOOKUPS.close()


def _find(name: str, path: str, here: Path) -> str | None:
    """A lookup, then the moment the runtime offers for arming the watch (a step's
    process started): the first lookup arms it, the second fills it, the third on is
    answered from memory."""
    from wfx.runtime.direct import _look_around, watch_when_due

    found = _look_around(name, path, str(here), None, None)[0]
    watch_when_due()
    return found


def test_a_lookup_is_answered_from_memory_until_a_place_on_its_way_changes(
    tmp_path: Path, watched: list[str]
) -> None:
    """The second lookup looks at nothing; a file of another name written in a folder on
    PATH changes nothing; the program installed first on PATH is found at once."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _executable(second / "tool", "#!/bin/sh\n")
    path = f"{first}:{second}"
    assert _find("tool", path, tmp_path) == f"{second}/tool"
    assert _find("tool", path, tmp_path) == f"{second}/tool"
    watched.clear()
    assert _find("tool", path, tmp_path) == f"{second}/tool"
    assert watched == []
    (first / "other").write_text("unrelated")
    (second / "tool.log").write_text("unrelated")
    assert _find("tool", path, tmp_path) == f"{second}/tool"
    assert watched == []
    _executable(first / "tool", "#!/bin/sh\n")
    assert _find("tool", path, tmp_path) == f"{first}/tool"
    assert watched


def _swap_link(link: Path, target: str) -> None:
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    os.replace(fresh, link)


CHANGES = {
    "made not executable": lambda t: (t / "a" / "tool").chmod(0o644),
    "removed": lambda t: (t / "a" / "tool").unlink(),
    "renamed away": lambda t: (t / "a" / "tool").rename(t / "a" / "tool.old"),
    "its folder renamed": lambda t: (t / "a").rename(t / "a.old"),
    "its folder's link swapped": lambda t: _swap_link(t / "current", "b"),
    "replaced by a folder": lambda t: ((t / "a" / "tool").unlink(), (t / "a" / "tool").mkdir()),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_on_the_way_is_seen_by_the_next_lookup(
    tmp_path: Path, watched: list[str], change: str
) -> None:
    """PATH is `current/` (a link to `a`), then `z`. Whatever changes what bash would
    find (the file, its mode, its folder, a link on the way) is seen by the next lookup;
    each answer is the one a search from scratch gives."""
    from wfx.runtime.direct import _look_now

    for folder in ("a", "b", "z"):
        (tmp_path / folder).mkdir()
    _executable(tmp_path / "a" / "tool", "#!/bin/sh\n")
    _executable(tmp_path / "z" / "tool", "#!/bin/sh\n")
    (tmp_path / "current").symlink_to("a")
    path = f"{tmp_path / 'current'}:{tmp_path / 'z'}"
    assert _find("tool", path, tmp_path) == f"{tmp_path / 'current'}/tool"
    assert _find("tool", path, tmp_path) == f"{tmp_path / 'current'}/tool"
    CHANGES[change](tmp_path)
    found = _find("tool", path, tmp_path)
    assert found == f"{tmp_path / 'z'}/tool"
    assert found == _look_now("tool", path, str(tmp_path), None, None)[0]


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_remembered_lookup_holds_only_until_a_change_on_its_way(
    tmp_path: Path, watched: list[str], change: str
) -> None:
    """A lookup made ahead of a start (the next step of a chain, made ready while the
    step before it runs) is taken at the start only while the watch saw nothing change
    on its way since; any change above makes it be looked up again."""
    from wfx.runtime import direct
    from wfx.runtime.spawn import Environment

    for folder in ("a", "b", "z"):
        (tmp_path / folder).mkdir()
    _executable(tmp_path / "a" / "tool", "#!/bin/sh\n")
    _executable(tmp_path / "z" / "tool", "#!/bin/sh\n")
    (tmp_path / "current").symlink_to("a")
    env = Environment({"PATH": _with_bash(f"{tmp_path / 'current'}:{tmp_path / 'z'}")})
    here = str(tmp_path)
    for _ in range(2):  # arms the watch, then fills it
        direct.look_up_direct(["tool"], env, {}, here)
        direct.watch_when_due()
    found, mark = direct.look_up_direct(["tool"], env, {}, here)
    assert found is not None and found[0] == f"{tmp_path / 'current'}/tool"
    assert mark is not None
    (tmp_path / "z" / "unrelated").write_text("x")
    assert direct.unchanged_since(mark)
    assert direct.unchanged_since(mark)
    CHANGES[change](tmp_path)
    assert not direct.unchanged_since(mark)
    again, _ = direct.look_up_direct(["tool"], env, {}, here)
    assert again is not None and again[0] == f"{tmp_path / 'z'}/tool"
    assert not direct.unchanged_since(mark)


def test_a_lookup_from_a_directory_not_given_is_never_remembered(
    tmp_path: Path, watched: list[str]
) -> None:
    """With no working directory given, the answer depends on the process's own, which
    the watch does not follow: no mark."""
    from wfx.runtime import direct
    from wfx.runtime.spawn import Environment

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    env = Environment({"PATH": _with_bash(str(tmp_path / "bin"))})
    for _ in range(3):
        direct.look_up_direct(["tool"], env, {}, None)
        direct.watch_when_due()
    found, mark = direct.look_up_direct(["tool"], env, {}, None)
    assert found is not None and mark is None


def test_what_bash_does_to_pwd_and_oldpwd_follows_their_directories(
    tmp_path: Path, watched: list[str]
) -> None:
    """PWD is kept while it names the directory the command starts in, and OLDPWD while
    it names a directory: a link swapped under PWD, OLDPWD's directory made or removed,
    each is seen by the next lookup (the answers are the ones looked up from scratch)."""
    from wfx.runtime.direct import _look_around, _look_now, watch_when_due

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    (tmp_path / "real").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "alias").symlink_to("real")
    question = (
        "tool",
        str(tmp_path / "bin"),
        str(tmp_path / "real"),
        str(tmp_path / "alias"),
        "../previous",
    )

    def both() -> tuple[object, object]:
        kept = _look_around(*question)
        watch_when_due()
        return kept, _look_now(*question)

    kept, fresh = both()
    assert kept == fresh == (str(tmp_path / "bin" / "tool"), str(tmp_path / "alias"), True)
    assert both() == (kept, fresh)  # now from memory
    (tmp_path / "previous").mkdir()
    kept, fresh = both()
    assert kept == fresh and kept[2] is False  # OLDPWD names a directory now
    _swap_link(tmp_path / "alias", "other")
    kept, fresh = both()
    assert kept == fresh and kept[1] == str(tmp_path / "real")  # PWD no longer names it
    (tmp_path / "previous").rmdir()
    kept, fresh = both()
    assert kept == fresh and kept[2] is True


def test_an_executable_bit_given_back_is_seen(tmp_path: Path, watched: list[str]) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    path = str(tmp_path / "bin")
    assert _find("tool", path, tmp_path) is None
    assert _find("tool", path, tmp_path) is None
    tool.chmod(0o755)
    assert _find("tool", path, tmp_path) == str(tool)


def test_a_relative_path_entry_is_watched_from_the_working_directory(
    tmp_path: Path, watched: list[str]
) -> None:
    """An empty PATH entry is the working directory (bash's rule); a program that
    appears there is found by the next lookup from there, and not from elsewhere."""
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    assert _find("tool", ":/nonexistent", tmp_path / "here") is None
    assert _find("tool", ":/nonexistent", tmp_path / "there") is None
    _executable(tmp_path / "here" / "tool", "#!/bin/sh\n")
    assert _find("tool", ":/nonexistent", tmp_path / "here") == "./tool"
    assert _find("tool", ":/nonexistent", tmp_path / "there") is None


def test_where_inotify_cannot_vouch_every_lookup_searches(
    tmp_path: Path, watched: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder on a file system whose files may change from elsewhere (here: no kind of
    file system is trusted): nothing is kept, every lookup looks."""
    from wfx import codewatch

    monkeypatch.setattr(codewatch, "LOCAL", frozenset())
    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    for _ in range(3):
        watched.clear()
        assert _find("tool", str(tmp_path / "bin"), tmp_path) == str(tmp_path / "bin" / "tool")
        assert watched == [str(tmp_path / "bin" / "tool")]


def test_a_forked_child_does_not_read_its_parents_watch(tmp_path: Path, watched: list[str]) -> None:
    """The inotify instance is the parent's: a forked child starts with no lookups kept
    and looks for itself (reading the parent's events would steal them from it)."""
    from wfx.runtime import direct

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    assert _find("tool", str(tmp_path / "bin"), tmp_path) is not None
    assert direct._LOOKUPS is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if direct._LOOKUPS is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    (tmp_path / "bin" / "tool").unlink()
    assert _find("tool", str(tmp_path / "bin"), tmp_path) is None  # the parent still sees


def test_the_watch_is_armed_only_once_enough_lookups_pay_for_it(tmp_path: Path) -> None:
    """Arming costs what some 50 lookups cost, and importing inotify's library (a cold
    `wfx` has not) 7 ms more: a process looks up by itself until it has made that many
    lookups, and arms only at a moment offered (a step's process started)."""
    import subprocess
    import sys

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    script = f"""
import sys
from wfx.runtime import direct

def look():
    assert direct._look_around("tool", {str(tmp_path / "bin")!r}, "/", None, None)[0]

for _ in range(direct._DUE_COLD - 1):
    look()
direct.watch_when_due()
assert not direct._LOOKUPS.armed and "inotify_simple" not in sys.modules, "armed too early"
look()
assert not direct._LOOKUPS.armed, "armed outside a moment offered"
direct.watch_when_due()
assert direct._LOOKUPS.armed, "never armed"
direct._LOOKUPS.close()
direct._LOOKUPS = None
for _ in range(direct._DUE):
    look()
direct.watch_when_due()
assert direct._LOOKUPS.armed, "the library loaded, yet not armed after _DUE lookups"
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_path_folder_made_after_the_lookup_is_seen(tmp_path: Path, watched: list[str]) -> None:
    """PATH names a folder that does not exist yet: the watch is on the nearest one that
    does, for the name on the way, so making the folder with the program in it is seen."""
    missing = tmp_path / "later" / "bin"
    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    path = f"{missing}:{tmp_path / 'bin'}"
    assert _find("tool", path, tmp_path) == str(tmp_path / "bin" / "tool")
    assert _find("tool", path, tmp_path) == str(tmp_path / "bin" / "tool")
    missing.mkdir(parents=True)
    _executable(missing / "tool", "#!/bin/sh\n")
    assert _find("tool", path, tmp_path) == str(missing / "tool")


def test_a_symbolic_link_loop_on_path_makes_every_lookup_look(
    tmp_path: Path, watched: list[str]
) -> None:
    """A loop of links on the way cannot be watched: nothing is kept, and the lookups still
    find what bash finds."""
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    path = f"{tmp_path / 'loop'}:{tmp_path / 'bin'}"
    for _ in range(3):
        assert _find("tool", path, tmp_path) == str(tmp_path / "bin" / "tool")
    from wfx.runtime import direct

    assert direct._LOOKUPS is not None and not direct._LOOKUPS.usable
    (tmp_path / "bin" / "tool").unlink()
    assert _find("tool", path, tmp_path) is None


def test_a_process_asking_many_questions_watches_only_the_last_ones(
    tmp_path: Path, watched: list[str]
) -> None:
    """A long-lived process (a test suite's, a program running workflow after workflow)
    asks from ever new directories: each arming watches the places of the last questions
    only, so it costs the same however many came before, and the last ones are still
    answered from memory."""
    from wfx.runtime import direct

    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    for n in range(3 * direct._RECENT):
        here = tmp_path / f"dir{n}"
        here.mkdir()
        assert _find("tool", str(tmp_path / "bin"), here) == str(tmp_path / "bin" / "tool")
    lookups = direct._LOOKUPS
    assert lookups is not None and lookups.armed
    assert len(lookups.recent) == direct._RECENT
    first = {str(tmp_path / f"dir{n}") for n in range(10)}
    assert not first & lookups.places  # the first questions' directories are not watched
    last = tmp_path / f"dir{3 * direct._RECENT - 1}"
    _find("tool", str(tmp_path / "bin"), last)
    watched.clear()
    assert _find("tool", str(tmp_path / "bin"), last) == str(tmp_path / "bin" / "tool")
    assert watched == []


def test_the_watch_is_armed_again_only_after_as_many_lookups_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watched: list[str]
) -> None:
    """A new question after the arming is looked up from the file system until the
    process has made another `_DUE` lookups: a process asking something new at every
    turn does not pay an arming at every turn."""
    from wfx.runtime import direct

    monkeypatch.setattr(direct, "_DUE", 4)
    monkeypatch.setattr(direct, "_DUE_COLD", 4)
    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "tool", "#!/bin/sh\n")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    for _ in range(4):
        _find("tool", str(tmp_path / "bin"), tmp_path / "a")
    lookups = direct._LOOKUPS
    assert lookups is not None and lookups.armed
    armed_at = lookups.looked_when_armed
    _find("tool", str(tmp_path / "bin"), tmp_path / "b")  # new: not armed again yet
    assert lookups.looked_when_armed == armed_at and str(tmp_path / "b") not in lookups.places
    for _ in range(3):
        _find("tool", str(tmp_path / "bin"), tmp_path / "b")
    assert lookups.looked_when_armed > armed_at and str(tmp_path / "b") in lookups.places


def test_a_locale_is_asked_of_glibc_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under another C library (its `confstr` names no glibc) wfx cannot tell whether
    bash would load LC_ALL's locale: the step goes through bash, which knows."""
    from wfx.runtime import direct

    direct._glibc_loads.cache_clear()
    monkeypatch.setattr(direct.os, "confstr", lambda _name: None)
    try:
        assert not direct._glibc_loads("C.UTF-8")
        assert direct._bash_warns_of_locale("C.UTF-8", os.environ.get("LOCPATH"))
        assert not direct._bash_warns_of_locale("C", os.environ.get("LOCPATH"))
    finally:
        direct._glibc_loads.cache_clear()


def test_a_path_entry_bash_expands_a_tilde_in_goes_to_bash(tmp_path: Path) -> None:
    """bash expands `~` at the start of a PATH entry when it searches (`~/bin`, a common
    way to write one in quotes), which no exec does: wfx must not pass over that entry to
    a program of the same name further along PATH."""
    from wfx.runtime.direct import direct_exec
    from wfx.runtime.spawn import Environment

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "bin").mkdir(parents=True)
    elsewhere.mkdir()
    _executable(home / "bin" / "tool", "#!/bin/sh\necho from home\n")
    _executable(elsewhere / "tool", "#!/bin/sh\necho from elsewhere\n")
    for entry in ("~/bin", f"~{os.environ.get('USER', 'root')}/bin"):
        env = Environment({"HOME": str(home), "PATH": _with_bash(f"{entry}:{elsewhere}")})
        assert direct_exec(["tool"], env, {}, str(tmp_path)) is None
    plain = Environment({"HOME": str(home), "PATH": _with_bash(f"{home}/bin:{elsewhere}")})
    found = direct_exec(["tool"], plain, {}, str(tmp_path))
    assert found is not None
    assert found[0] == f"{home}/bin/tool"


@pytest.mark.parametrize("name", BASH_OWN)
def test_a_variable_only_bash_can_set_sends_the_step_through_bash(name: str) -> None:
    """bash replaces these with its own path, version, script or start time whatever it
    was given; wfx cannot know them as bash would: the step goes through bash (compared
    with bash itself, EPOCHREALTIME differs from one bash to the next)."""
    from wfx.runtime.direct import direct_exec
    from wfx.runtime.spawn import Environment

    path = _with_bash("/usr/bin:/bin")
    assert direct_exec(["env"], Environment({"PATH": path}), {}, "/") is not None
    assert direct_exec(["env"], Environment({"PATH": path, name: "7"}), {}, "/") is None
    assert direct_exec(["env"], Environment({"PATH": path}), {name: "7"}, "/") is None
