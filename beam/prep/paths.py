"""Resolving manifest blob names to URIs that are guaranteed to lie inside the audio root.

The manifest is data: a row must not be able to pull an arbitrary file from a worker into a
dataset. So `..` segments (also percent-encoded), absolute paths or URIs outside the root, other
buckets, and (checked when the file is opened) symlinks leading out of a local root are refused.
"""

from __future__ import annotations

import os
import posixpath
import re
from urllib.parse import unquote

__all__ = ["OutsideRootError", "is_remote", "join_root", "real_path_inside", "resolve_blob"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class OutsideRootError(ValueError):
    """The blob does not lie inside the audio root."""


def is_remote(uri: str) -> bool:
    """True for URIs with a scheme (gs://, s3://, ...), False for local paths."""
    return bool(_SCHEME.match(uri)) and not uri.startswith("file://")


def _strip_file_scheme(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def normalise_root(root: str) -> str:
    """The root without trailing slashes; local roots made absolute."""
    root = _strip_file_scheme(root)
    if is_remote(root):
        return root.rstrip("/")
    return os.path.abspath(root)


def join_root(root: str, relative: str) -> str:
    """Joins a root (local or URI) and a relative name with '/'.

    Local paths are normalised ('./a.wav', 'a//b.wav'), so that one file has one URI and a second row
    naming it in another spelling is caught as a duplicate (it would otherwise be written twice, maybe
    into two splits). Callers refuse '..' first, so normalising never climbs out of the root. Object
    names are kept as written: in a bucket, 'a//b.wav' and 'a/b.wav' are different objects.
    """
    return f"{root.rstrip('/')}/{relative}" if is_remote(root) else os.path.normpath(os.path.join(root, relative))


def _has_dot_segments(name: str) -> bool:
    decoded = unquote(unquote(name))  # twice: %252e%252e decodes to %2e%2e, then to ..
    return ".." in re.split(r"[/\\]", decoded)


def resolve_blob(root: str, blob: str) -> str:
    """Returns the URI or absolute path of `blob` under `root` (a value from normalise_root).

    Raises:
        OutsideRootError: with a message that says why the blob is refused.
        ValueError: for an empty blob name.
    """
    if not blob:
        raise ValueError("empty blob name")
    if "\x00" in blob:
        raise OutsideRootError("blob name contains a NUL byte")
    if _has_dot_segments(blob):
        raise OutsideRootError(f"blob name {blob!r} has a '..' segment")
    blob = _strip_file_scheme(blob)
    remote_root = is_remote(root)
    if is_remote(blob) or blob.startswith("/"):
        candidate = blob if is_remote(blob) else posixpath.normpath(blob)
        if is_remote(blob) != remote_root or not candidate.startswith(root.rstrip("/") + "/"):
            raise OutsideRootError(f"{blob!r} is not inside the audio root {root!r}")
        return candidate
    return join_root(root, blob)


def real_path_inside(root: str, path: str) -> str:
    """For local files: the real path of `path`, refusing symlinks that lead out of `root`.

    Raises:
        OutsideRootError: if the real path is not inside the real root.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise OutsideRootError(f"{path!r} resolves to {real!r}, outside the audio root {root!r}")
    return real
