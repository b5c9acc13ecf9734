"""beam/gcs_listing.py on an emulator that pages listings as Cloud Storage does (tests/helpers/gcs_faithful.py).

What StatFiles relies on: a key's objects from its first to its last manifest name come with their
sizes and generations, in name order, a page per `page_size` objects, starting at the first name;
a listing stopped at its page budget says how far it got; a refused listing is one line.
Requests are counted by a proxy in front of the emulator, not by patching the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from audioflow.beam.gcs_listing import ListingKey, PrefixListing, listing_key, page_budget
from audioflow.beam.storage import ObjectStat, RemoteStorageError

from gcs_emulator import LatencyProxy, in_new_thread, loopback_server, refusing_handler
from gcs_faithful import FaithfulGcs

BUCKET = "audioflow-listing"


@pytest.fixture(scope="module")
def objects(faithful_gcs: FaithfulGcs) -> dict[str, ObjectStat]:
    """35 objects in `audio/` (sizes 1..35), 3 in `audio/sub/`, 2 beside `audio/`; their stats by URI."""
    with faithful_gcs.active():
        faithful_gcs.create_bucket(BUCKET)
        names = [f"audio/{i:03d}.wav" for i in range(35)] + [f"audio/sub/{i}.wav" for i in range(3)]
        names += ["audio-other/x.wav", "audiox.wav"]
        stats = {}
        for index, name in enumerate(names):
            uri = faithful_gcs.write_bytes(f"gs://{BUCKET}/{name}", b"x" * (index + 1))
            blob = faithful_gcs.client.bucket(BUCKET).get_blob(name)
            stats[uri] = ObjectStat(index + 1, int(blob.generation))
    return stats


@pytest.fixture
def counted(faithful_gcs: FaithfulGcs) -> Iterator[Callable[[Callable[[], Any]], tuple[Any, dict[str, int]]]]:
    """Runs a function on a fresh client that reaches the emulator through a counting proxy."""
    proxy = LatencyProxy(int(faithful_gcs.host.rsplit(":", 1)[1]))

    def run(fn: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
        proxy.reset()
        with faithful_gcs.active(f"http://127.0.0.1:{proxy.port}"):
            value = in_new_thread(fn)
        kinds = {kind: n for kind, n in proxy.kinds.items() if kind != "GET /storage/v1/b/…"}  # bucket metadata
        return value, kinds

    try:
        yield run
    finally:
        proxy.close()


def listed(listing: PrefixListing) -> tuple[dict[str, ObjectStat], str | None, int]:
    return dict(listing), listing.reached, listing.pages


def test_listing_keys() -> None:
    root = f"gs://{BUCKET}/audio"
    assert listing_key(root, f"{root}/a.wav") == ListingKey(f"{root}/", False)
    assert listing_key(root + "/", f"{root}/d/e/a.wav") == ListingKey(f"{root}/d/", True)
    assert listing_key("gs://b", "gs://b/a.wav") == ListingKey("gs://b/", False)
    assert listing_key("gs://b", "gs://b/x/y.wav") == ListingKey("gs://b/x/", True)
    for outside in ("gs://b2/a.wav", "/local/a.wav", f"{root}x/a.wav", f"{root}/"):
        with pytest.raises(ValueError, match="is not a gs:// object under"):
            listing_key(root, outside)


def test_page_budget_is_one_page_per_ten_rows() -> None:
    assert [page_budget(n) for n in (1, 10, 11, 1000, 1_000_000)] == [1, 1, 2, 100, 100_000]


def test_a_range_is_listed_from_its_first_name_a_page_at_a_time(objects, counted) -> None:
    root = f"gs://{BUCKET}/audio"
    first, last = f"{root}/005.wav", f"{root}/031.wav"
    key = ListingKey(f"{root}/", False)
    (stats, reached, pages), kinds = counted(lambda: listed(PrefixListing(key, first, last, 100, page_size=10)))
    expected = {uri: stat for uri, stat in objects.items() if first <= uri <= last}
    assert stats == expected and len(stats) == 27
    assert reached is None  # complete: every name up to `last` was listed
    # 27 names from 005 on, and the page that passes `last` ends the listing: 3 pages, 3 requests.
    assert pages == 3
    assert kinds == {"GET /storage/v1/b/…/o": 3}


def test_a_flat_key_skips_sub_folders_and_a_recursive_one_includes_them(objects, counted) -> None:
    root = f"gs://{BUCKET}/audio"
    flat = ListingKey(f"{root}/", False)
    (stats, reached, _), _ = counted(lambda: listed(PrefixListing(flat, f"{root}/030.wav", f"{root}/zzz.wav", 5)))
    assert sorted(stats) == [f"{root}/{i:03d}.wav" for i in range(30, 35)] and reached is None
    sub = ListingKey(f"{root}/sub/", True)
    (stats, reached, _), _ = counted(lambda: listed(PrefixListing(sub, f"{root}/sub/0.wav", f"{root}/sub/2.wav", 1)))
    assert stats == {uri: stat for uri, stat in objects.items() if "/sub/" in uri} and reached is None


def test_a_listing_stops_at_its_page_budget_and_says_how_far_it_got(objects, counted) -> None:
    root = f"gs://{BUCKET}/audio"
    key = ListingKey(f"{root}/", False)
    (stats, reached, pages), kinds = counted(
        lambda: listed(PrefixListing(key, f"{root}/000.wav", f"{root}/034.wav", 2, page_size=10))
    )
    assert pages == 2 and kinds == {"GET /storage/v1/b/…/o": 2}
    assert sorted(stats) == [f"{root}/{i:03d}.wav" for i in range(20)]
    assert reached == f"{root}/019.wav"  # names after it were not looked at


def test_an_empty_range_and_a_missing_bucket_list_nothing(faithful_gcs: FaithfulGcs, objects, counted) -> None:
    root = f"gs://{BUCKET}/audio"
    key = ListingKey(f"{root}/", False)
    (stats, reached, _), _ = counted(lambda: listed(PrefixListing(key, f"{root}/1", f"{root}/2", 1)))
    assert stats == {} and reached is None
    gone = ListingKey("gs://audioflow-no-such-bucket/a/", True)
    (stats, reached, _), _ = counted(lambda: listed(PrefixListing(gone, gone.prefix + "x", gone.prefix + "y", 1)))
    assert stats == {} and reached is None


def test_a_refused_listing_is_one_line(faithful_gcs: FaithfulGcs) -> None:
    key = ListingKey("gs://private/a/", True)
    listing = PrefixListing(key, "gs://private/a/1.wav", "gs://private/a/2.wav", 1)
    refusing = refusing_handler(b'{"error": {"code": 403, "message": "no storage.objects.list\\naccess"}}')
    with (
        loopback_server(refusing) as url,
        faithful_gcs.active(url),
        pytest.raises(RemoteStorageError) as caught,
    ):
        in_new_thread(lambda: list(listing))
    assert str(caught.value) == "listing gs://private/a/: HTTP 403: no storage.objects.list access"
    assert listing.reached == ""  # nothing was listed: no name may be called missing
