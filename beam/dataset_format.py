"""The audioflow dataset format, in one place: records, shard names and dataset.json.

The Beam writer, the TensorFlow reader, `inspect --verify`, the KFP components and the report all
import this module, so the contract cannot drift between them. It imports neither Beam nor
TensorFlow: records are `tf.train.Example` protos encoded and decoded by hand (the wire format is
small and stable), which keeps worker processes light.

A record holds these features:
    audio         bytes   samples, little-endian, interleaved (frame-major: frames × channels),
                          in the dataset's sample format (int16 or float32)
    label         int64   the label as written (integer labels) or its index in `labels.names`
    label_name    bytes   only for string labels: the label as written
    sample_rate   int64   Hz
    num_channels  int64
    num_frames    int64
    blob          bytes   the blob name as written in the manifest (UTF-8)
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "REJECTED_FILE",
    "SAMPLE_FORMATS",
    "AudioExample",
    "DatasetInfo",
    "ShardInfo",
    "SplitInfo",
    "decode_example",
    "encode_example",
    "parse_shard_name",
    "shard_file_name",
    "tf_feature_spec",
]

FORMAT_VERSION = 1
METADATA_FILE = "dataset.json"
REJECTED_FILE = "rejected.jsonl"

# sample format -> (numpy dtype string, bytes per sample)
SAMPLE_FORMATS: dict[str, tuple[str, int]] = {"int16": ("<i2", 2), "float32": ("<f4", 4)}
COMPRESSIONS: dict[str, str] = {"none": ".tfrecord", "gzip": ".tfrecord.gz"}

# The stable codes of rejected.jsonl's `reason` field; the messages say what happened to each row.
REJECT_REASONS: dict[str, str] = {
    "malformed_row": "the CSV row lacks the label or blob field",
    "bad_blob": "the blob name is empty",
    "bad_label": "the label is empty, or not an integer in int64 range with --label-type int",
    "bad_split": "the split column names a split that --splits does not define",
    "outside_root": "the blob lies outside the audio root ('..', absolute path, other bucket, symlink)",
    "duplicate": "the same blob appears on an earlier row, which was kept",
    "missing": "no file exists at the blob's path",
    "too_large": "the file is larger than --max-file-size, or its header says it decodes to more than one example "
    "may hold (1 GiB)",
    "unreadable": "the file cannot be opened or decoded as audio (corrupt, truncated, unsupported)",
    "empty_audio": "the file decodes to zero frames",
    "too_long": "the header says the audio is longer than --max-duration",
    "invalid_samples": "the decoded audio holds NaN or infinite samples",
}

_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord(\.gz)?$")


def shard_file_name(split: str, index: int, count: int, compression: str = "none") -> str:
    """Returns the file name of shard `index` (0-based) of `count` in `split`."""
    return f"{split}-{index:05d}-of-{count:05d}{COMPRESSIONS[compression]}"


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """Returns (split, index, count) for a shard file name, or None for any other name."""
    match = _SHARD_NAME.match(name)
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["count"])


@dataclass(frozen=True)
class AudioExample:
    """One decoded record; `audio` stays raw bytes so writer and verifier never copy samples."""

    audio: bytes
    label: int
    sample_rate: int
    num_channels: int
    num_frames: int
    blob: str
    label_name: str | None = None


# --- protobuf wire format (tf.train.Example) ---------------------------------------------------
# Example{1: Features{1: map<string, Feature>}}; map entry {1: key, 2: value};
# Feature{1: BytesList{1: repeated bytes}, 3: Int64List{1: packed int64}}.


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 negatives are ten-byte two's complement on the wire
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(tag: int, payload_len: int) -> bytes:
    return bytes((tag,)) + _varint(payload_len)


def _bytes_feature_parts(value: bytes) -> list[bytes]:
    bytes_list_len = 1 + len(_varint(len(value))) + len(value)
    return [_length_delimited(0x0A, bytes_list_len), _length_delimited(0x0A, len(value)), value]


def _int64_feature_parts(value: int) -> list[bytes]:
    packed = _varint(value)
    int64_list = _length_delimited(0x0A, len(packed)) + packed
    return [_length_delimited(0x1A, len(int64_list)) + int64_list]


def _entry_parts(key: str, feature_parts: list[bytes]) -> list[bytes]:
    key_bytes = key.encode()
    feature_len = sum(map(len, feature_parts))
    head = _length_delimited(0x0A, len(key_bytes)) + key_bytes + _length_delimited(0x12, feature_len)
    return [_length_delimited(0x0A, len(head) + feature_len), head, *feature_parts]


def encode_example(example: AudioExample) -> bytes:
    """Serializes an example as a `tf.train.Example`, copying the audio bytes exactly once."""
    entries: list[bytes] = []
    entries += _entry_parts("audio", _bytes_feature_parts(example.audio))
    entries += _entry_parts("blob", _bytes_feature_parts(example.blob.encode()))
    entries += _entry_parts("label", _int64_feature_parts(example.label))
    if example.label_name is not None:
        entries += _entry_parts("label_name", _bytes_feature_parts(example.label_name.encode()))
    entries += _entry_parts("num_channels", _int64_feature_parts(example.num_channels))
    entries += _entry_parts("num_frames", _int64_feature_parts(example.num_frames))
    entries += _entry_parts("sample_rate", _int64_feature_parts(example.sample_rate))
    features_len = sum(map(len, entries))
    return b"".join([_length_delimited(0x0A, features_len), *entries])


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):
    """Yields (field number, wire type, int or memoryview) for each field of a message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(buf, pos)
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire_type == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire_type == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def _decode_feature(buf: memoryview) -> bytes | int:
    for kind, _, list_buf in _fields(buf):
        for number, wire_type, value in _fields(list_buf):
            if number != 1:
                continue
            if kind == 1:
                return bytes(value)
            if kind == 3:
                raw = _read_varint(value, 0)[0] if wire_type == 2 else value
                return raw - (1 << 64) if raw >= 1 << 63 else raw
    raise ValueError("empty or unsupported feature")


def decode_example(data: bytes) -> AudioExample:
    """Parses a serialized record back into an AudioExample.

    Raises:
        ValueError: if the bytes are not a record of this format (missing or mistyped feature).
    """
    features: dict[str, bytes | int] = {}
    for number, _, features_buf in _fields(memoryview(data)):
        if number != 1:
            continue
        for _, _, entry in _fields(features_buf):
            key, value = None, None
            for entry_number, _, entry_value in _fields(entry):
                if entry_number == 1:
                    key = bytes(entry_value).decode()
                elif entry_number == 2:
                    value = _decode_feature(entry_value)
            if key is not None and value is not None:
                features[key] = value
    try:
        label_name = features.get("label_name")
        return AudioExample(
            audio=_typed(features["audio"], bytes),
            label=_typed(features["label"], int),
            sample_rate=_typed(features["sample_rate"], int),
            num_channels=_typed(features["num_channels"], int),
            num_frames=_typed(features["num_frames"], int),
            blob=_typed(features["blob"], bytes).decode(),
            label_name=None if label_name is None else _typed(label_name, bytes).decode(),
        )
    except KeyError as missing:
        raise ValueError(f"record has no feature {missing}") from None


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"feature has type {type(value).__name__}, expected {kind.__name__}")
    return value


def tf_feature_spec(with_label_name: bool) -> dict[str, Any]:
    """The `tf.io.parse_example` spec for this format (imports TensorFlow, so readers only)."""
    import tensorflow as tf

    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "num_channels": tf.io.FixedLenFeature([], tf.int64),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "blob": tf.io.FixedLenFeature([], tf.string),
    }
    if with_label_name:
        spec["label_name"] = tf.io.FixedLenFeature([], tf.string)
    return spec


# --- dataset.json ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardInfo:
    """One shard file: its name (relative to the dataset folder), record count and size."""

    name: str
    num_examples: int
    num_bytes: int


@dataclass(frozen=True)
class SplitInfo:
    """One split: what it holds and which files hold it."""

    num_examples: int
    num_shards: int
    files: list[ShardInfo]
    duration_seconds: float
    num_bytes: int
    label_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    """The contents of dataset.json. Its presence in a folder means the dataset is complete.

    Sections beyond the typed ones (`stats`, `options`, `tool`, ...) are plain JSON objects so that
    adding a statistic never breaks older readers.
    """

    format_version: int
    created: str
    audio: dict[str, Any]  # sample_format, encoding, sample_rate (fixed or null), num_channels (fixed or null)
    compression: str
    splits: dict[str, SplitInfo]
    labels: dict[str, Any]  # names (list or null), counts {label: n}
    rejected: dict[str, Any]  # num_rows, by_reason, file, fraction, max_fraction, passed
    manifest: dict[str, Any]  # uri, sha256, num_rows
    audio_root: str
    stats: dict[str, Any]  # sample_rates, channels, duration_percentiles, total_hours, ...
    options: dict[str, Any]
    tool: dict[str, Any]

    @property
    def sample_format(self) -> str:
        return self.audio["sample_format"]

    @property
    def label_names(self) -> list[str] | None:
        return self.labels.get("names")

    @property
    def num_examples(self) -> int:
        return sum(split.num_examples for split in self.splits.values())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DatasetInfo:
        raw = json.loads(text)
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"dataset format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        splits = {
            name: SplitInfo(
                num_examples=split["num_examples"],
                num_shards=split["num_shards"],
                files=[ShardInfo(**shard) for shard in split["files"]],
                duration_seconds=split["duration_seconds"],
                num_bytes=split["num_bytes"],
                label_counts=split.get("label_counts", {}),
            )
            for name, split in raw["splits"].items()
        }
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in raw.items() if k in known}, "splits": splits})
