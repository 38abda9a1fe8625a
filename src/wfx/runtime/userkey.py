"""This user's signing key for the caches wfx keeps (`$XDG_CACHE_HOME/wfx/cache.key`).

The caches hold pickles and compiled code, which must never be loaded from a file anyone
else wrote: each is signed (HMAC-SHA256) with a key only this user can read, made on
first use, and a file whose signature does not match is not loaded, just missed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from functools import cache
from pathlib import Path

#: the length of a signature, which comes first in a signed file
DIGEST = hashlib.sha256().digest_size


def sign(payload: bytes, key: bytes | None = None) -> bytes:
    """The signature of `payload` with this user's key (or `key`)."""
    return hmac.new(secret() if key is None else key, payload, hashlib.sha256).digest()


def verified(signed: bytes, key: bytes | None = None) -> bytes | None:
    """The payload of a signed entry when this user's key (or `key`) signed it, else None."""
    signature, payload = signed[:DIGEST], signed[DIGEST:]
    return payload if hmac.compare_digest(signature, sign(payload, key)) else None


def key_path() -> Path:
    """Where this process's key is: under `$XDG_CACHE_HOME` (default `~/.cache`)."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "wfx" / "cache.key"


def key_at(path: str | Path) -> bytes:
    """The key in the file `path`, refused (an exception) unless it is this user's own and
    private: how the warm server reads the key a copy of it used (the copy's environment
    may name another place than the server's)."""
    return _own_key(Path(path))


@cache
def secret() -> bytes:
    """This user's signing key, made (readable by this user only) on first use."""
    path = key_path()
    with contextlib.suppress(FileNotFoundError):
        return _own_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".cache.key.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(os.urandom(32))
    with contextlib.suppress(FileExistsError):
        os.link(partial, path)  # another process may have made one first: keep theirs
    partial.unlink()
    return _own_key(path)


def _own_key(path: Path) -> bytes:
    """The key in `path`, refused (an exception: no cache) unless only its owner, this
    user, can read or change it."""
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path} is not private to this user")
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path} is not a key")
    return key
