"""One record of a shard: a `tf.train.Example` encoded and decoded by hand, without TensorFlow.

The wire format is small and stable, so writers and readers need neither TensorFlow nor protobuf.
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

from dataclasses import dataclass
from typing import Any

__all__ = ["SAMPLE_FORMATS", "AudioExample", "decode_example", "encode_example", "tf_feature_spec"]

# sample format -> (numpy dtype string, bytes per sample)
SAMPLE_FORMATS: dict[str, tuple[str, int]] = {"int16": ("<i2", 2), "float32": ("<f4", 4)}


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
