"""Small file operations on any Beam filesystem (local paths and gs:// alike)."""

from __future__ import annotations

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = ["delete_if_exists", "delete_tree", "list_names", "read_text", "write_text_atomically"]


def read_text(uri: str) -> str:
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        return stream.read().decode("utf-8")


def write_text_atomically(uri: str, text: str) -> None:
    """Writes to a temporary name, then renames: readers see the whole file or none of it."""
    temporary = uri + ".incomplete"
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        stream.write(text.encode("utf-8"))
    if FileSystems.exists(uri):
        FileSystems.delete([uri])
    FileSystems.rename([temporary], [uri])


def delete_if_exists(uris: list[str]) -> None:
    existing = [uri for uri in uris if FileSystems.exists(uri)]
    if existing:
        FileSystems.delete(existing)


def delete_tree(uri: str) -> None:
    """Deletes a folder and everything under it (a local directory, or every object under a prefix)."""
    base = uri.rstrip("/")
    if FileSystems.exists(base):  # a local directory (object stores have no directories)
        FileSystems.delete([base])
        return
    matched = FileSystems.match([base + "/**"])[0].metadata_list
    if matched:
        FileSystems.delete([metadata.path for metadata in matched])


def list_names(folder: str) -> list[str]:
    """The names of the files directly in a folder (local or object-store prefix)."""
    base = folder.rstrip("/") + "/"
    matched = FileSystems.match([base + "*"])[0].metadata_list
    return sorted(metadata.path[len(base) :] for metadata in matched if "/" not in metadata.path[len(base) :])
