"""WriteShards on its own: real audio in, temporary shard files out, read back with the format module.

Records are compared with soundfile's own decode of each file; a file that cannot be decoded is a
rejection, not a crash; files roll over at twice the shard size, in manifest order.
"""

from __future__ import annotations

import operator
from pathlib import Path

import apache_beam as beam
import soundfile as sf
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.format import AudioExample, decode_example, iter_shard_records
from audioflow.beam.job.write import WriteShards
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import PlannedRow

from audio_files import expected_int16, write_audio, write_corrupt_files

_SHARD_SUMMARY = operator.attrgetter("split", "unit", "part", "stats.num_examples")


def planned(
    options: IngestOptions, line: int, path: Path, split: str, label: str, size: int | None = None
) -> PlannedRow:
    """A row as StatFiles hands it on: `size` is the file's unless a test says otherwise."""
    blob = str(path.relative_to(options.audio_root))
    return PlannedRow(
        row=ManifestRow(line, label, blob),
        split=split,
        uri=str(path),
        label=["cat", "dog"].index(label),
        label_name=label,
        size=path.stat().st_size if size is None else size,
    )


def read_back(temp_dir: Path, name: str) -> list[AudioExample]:
    with open(temp_dir / name, "rb") as raw:
        return [decode_example(payload) for payload in iter_shard_records(raw, name)]


def expected_example(row: PlannedRow, path: Path) -> AudioExample:
    samples = expected_int16(path)
    return AudioExample(
        audio=samples.tobytes(),
        label=row.label,
        sample_rate=sf.info(path).samplerate,
        num_channels=samples.shape[1],
        num_frames=samples.shape[0],
        blob=row.row.blob,
        label_name=row.label_name,
    )


def _all_at_most(limit: int):
    def check(sizes: list[int]) -> None:
        assert sizes and max(sizes) <= limit, sizes

    return check


def test_records_are_the_decoded_audio_in_manifest_order(pipeline, run_counting, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), audio_root=str(root)
    )
    files = [
        (write_audio(root / "b.wav", rate=16000, seconds=0.2, seed=1), "train", "dog"),
        (write_audio(root / "a.flac", rate=8000, seconds=0.3, channels=2, seed=2), "train", "cat"),
        (write_audio(root / "sub" / "c.wav", rate=22050, seconds=0.1, subtype="PCM_24", seed=3), "train", "cat"),
        (write_audio(root / "d.wav", rate=16000, seconds=0.1, seed=4), "test", "dog"),
    ]
    corrupt = write_corrupt_files(root / "corrupt")["truncated_header"]
    rows = [planned(options, line, path, split, label) for line, (path, split, label) in enumerate(files, start=2)]
    rows.append(planned(options, 9, corrupt, "train", "dog"))
    temp_dir = tmp_path / "out" / "_temporary-test"

    written = pipeline | beam.Create(rows[::-1]) | "WriteShards" >> WriteShards(options, str(temp_dir))
    # 128 MiB shards: one unit per split, one file per unit.
    assert_that(
        written.shards | beam.Map(_SHARD_SUMMARY), equal_to([("train", 0, 0, 3), ("test", 0, 0, 1)]), label="Shards"
    )
    assert_that(
        written.rejected | beam.Map(operator.attrgetter("line", "reason")), equal_to([(9, "unreadable")]), label="Bad"
    )
    counts = run_counting(pipeline)

    train = read_back(temp_dir, "train-00000-0000.tfrecord")
    test = read_back(temp_dir, "test-00000-0000.tfrecord")
    assert train == [expected_example(row, path) for row, (path, _, _) in zip(rows[:3], files[:3], strict=True)]
    assert test == [expected_example(rows[3], files[3][0])]
    records_bytes = sum(path.stat().st_size for path in temp_dir.glob("*.tfrecord"))  # not their .index files
    assert counts == {
        "examples_written": 4,
        "files_decoded": 5,  # the corrupt file too: it was read and its decoding failed
        "bytes_written": records_bytes,
        "rows_rejected": 1,
        "rejected_unreadable": 1,
    }


def test_files_roll_over_at_twice_the_shard_size(pipeline, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"),
        output=str(tmp_path / "out"),
        audio_root=str(root),
        shard_size=1024,  # files roll over past 2 KiB
        compression="gzip",
    )
    # 12 clips of 400 bytes of samples; the sizes StatFiles reported (1 byte each) put them all in
    # one unit, so the unit's records are spread over several files. FLAC clips are decoded on the pool.
    paths = [
        write_audio(root / f"{index:02d}.{'flac' if index % 2 else 'wav'}", rate=8000, seconds=0.025, seed=index)
        for index in range(12)
    ]
    rows = [planned(options, line, path, "train", "dog", size=1) for line, path in enumerate(paths, start=2)]
    temp_dir = tmp_path / "out" / "_temporary-test"
    written = pipeline | beam.Create(rows) | "WriteShards" >> WriteShards(options, str(temp_dir))
    assert_that(written.rejected, equal_to([]), label="NoneRejected")
    assert_that(written.shards | beam.Map(operator.attrgetter("num_bytes")), _all_at_most(2 * 1024), label="Sizes")
    pipeline.run().wait_until_finish()

    names = sorted(path.name for path in temp_dir.glob("*.tfrecord.gz"))  # not their quality sidecars
    assert sorted(path.name for path in temp_dir.iterdir()) == sorted([*names, *(f"{n}.quality.jsonl" for n in names)])
    assert len(names) > 1 and names[0] == "train-00000-0000.tfrecord.gz"
    assert names == [f"train-00000-{part:04d}.tfrecord.gz" for part in range(len(names))]
    examples = [example for name in names for example in read_back(temp_dir, name)]
    assert examples == [expected_example(row, path) for row, path in zip(rows, paths, strict=True)]
