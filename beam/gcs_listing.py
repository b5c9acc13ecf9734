"""Sizes and generations of many gs:// objects from bucket listings: a request per 1,000 objects.

The ingest job needs every file's size before it writes (shard assignment by bytes, --max-file-size)
and pins the generation it will read. A listing page gives both for up to 1,000 objects, so a
manifest that names most of a folder costs about one request per 1,000 files instead of one per
file. Manifest rows are grouped under a listing key: the first folder below the audio root (listed
recursively), or the root itself for files directly in it (listed with a delimiter). Each key is
listed from its first manifest name to its last, in name order, as Cloud Storage returns it.

A key whose names are sparse in their range would cost more pages than the files it sizes, so its
listing stops after `page_budget(rows)` pages; `PrefixListing.reached` then says up to which name
the listing is complete, and the rows past it are stat()ed one by one (docs/gcs.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from google.api_core.exceptions import GoogleAPICallError, NotFound

from audioflow.beam.storage import ObjectStat, RemoteStorageError, gcs_client

__all__ = [
    "LISTING_PAGE_SIZE",
    "ROWS_PER_PAGE",
    "ListingKey",
    "PrefixListing",
    "listing_key",
    "page_budget",
]

LISTING_PAGE_SIZE = 1000  # objects per listing page: Cloud Storage's maximum
# A key's listing may take one page per this many of its rows before it gives up: listing pays for
# itself while the manifest names at least 1 in 100 of the objects in its range (worst case: 1.1
# requests per file for the sizes, against 1 for a stat per file).
ROWS_PER_PAGE = 10


@dataclass(frozen=True, order=True)
class ListingKey:
    """What one listing covers: every object under `prefix` (gs://bucket/name-prefix/), or only the
    objects directly in it when `recursive` is False."""

    prefix: str
    recursive: bool


def listing_key(root: str, uri: str) -> ListingKey:
    """The listing that covers `uri`, an object under the gs:// audio root `root`.

    Raises:
        ValueError: `uri` is not a gs:// object under `root`.
    """
    base = root.rstrip("/") + "/"
    if not uri.startswith("gs://") or not uri.startswith(base) or len(uri) == len(base):
        raise ValueError(f"{uri} is not a gs:// object under {root}")
    first, slash, _ = uri[len(base) :].partition("/")
    return ListingKey(base + first + "/", True) if slash else ListingKey(base, False)


def page_budget(rows: int) -> int:
    """How many listing pages a key with `rows` manifest rows may take (at least one)."""
    return max(1, math.ceil(rows / ROWS_PER_PAGE))


class PrefixListing:
    """Iterates (uri, ObjectStat) for the objects of one key named from `first` to `last`, in name order.

    Iteration stops after `max_pages` pages. Afterwards `reached` is None if every object up to
    `last` was listed; otherwise it is the last name listed (an object URI): rows up to it that were
    not listed do not exist, rows past it are unknown.

    Raises (while iterating):
        RemoteStorageError: the listing was refused (e.g. 403 without storage.objects.list), in one line.
    """

    def __init__(self, key: ListingKey, first: str, last: str, max_pages: int, page_size: int = LISTING_PAGE_SIZE):
        if not (key.prefix.startswith("gs://") and first.startswith(key.prefix) and last.startswith(key.prefix)):
            raise ValueError(f"{first}..{last} is not under {key.prefix}")
        self._key, self._first, self._last, self._max_pages = key, first, last, max_pages
        self._page_size = page_size
        self.reached: str | None = ""  # nothing listed yet
        self.pages = 0

    def __iter__(self) -> Iterator[tuple[str, ObjectStat]]:
        bucket, _, prefix = self._key.prefix[len("gs://") :].partition("/")
        base = f"gs://{bucket}/"
        client, retry = gcs_client()
        blobs = client.list_blobs(
            bucket,
            prefix=prefix or None,
            delimiter=None if self._key.recursive else "/",
            start_offset=self._first[len(base) :],
            page_size=self._page_size,
            fields="items(name,size,generation),nextPageToken",
            retry=retry,
        )
        try:
            for page in blobs.pages:
                self.pages += 1
                for blob in page:
                    uri = base + blob.name
                    if uri > self._last:
                        self.reached = None
                        return
                    if uri >= self._first:  # servers that ignore startOffset list from the prefix's start
                        yield uri, ObjectStat(int(blob.size), int(blob.generation))
                    self.reached = uri
                if self.pages >= self._max_pages and blobs.next_page_token:
                    return
        except NotFound:  # no such bucket: nothing exists
            pass
        except GoogleAPICallError as error:
            code = getattr(error, "code", None)
            reason = " ".join(str(getattr(error, "message", None) or error).split())
            reason = re.sub(r"^[A-Z]+ https?://\S+: ", "", reason)  # the request's URL says nothing new
            raise RemoteStorageError(f"listing {self._key.prefix}: HTTP {code}: {reason}") from None
        self.reached = None
