"""One record of a shard: a `tf.train.Example` encoded and decoded by hand, without TensorFlow.

The wire format is small and stable, so writers and readers need neither TensorFlow nor protobuf.
Every record holds these features:
    audio         bytes   samples, little-endian, interleaved (frame-major: frames × channels),
                          in the dataset's sample format (int16 or float32)
    sample_rate   int64   Hz
    num_channels  int64
    num_frames    int64
    blob          bytes   the blob name as written in the manifest (UTF-8)
and, depending on what the manifest holds (a dataset that uses none of these is format_version 1):
    label         int64   single-label datasets: the label as written (integer labels) or its index
                          in `labels.names`
    label_name    bytes   single-label string datasets: the label as written
    labels        int64 list   multi-label datasets: the label indices (or integers), ascending
    label_names   bytes list   multi-label string datasets: the names, in the order of `labels`
    text          bytes   the text target, UTF-8, NFC-normalised
    source_sample_rate, segment_start, segment_end   int64   segments and windows: where the
                          example lies in its source file, in frames at the source's own rate
                          ([start, end) of real audio; seconds = frames / source_sample_rate exactly)
    window_offset int64   windows: the window's start relative to its parent row's start, in source frames
    group         bytes   with --split-by: the group the split was decided by
    <column>      bytes, int64 or float32   a kept manifest column (--keep-columns, --column-types)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COLUMN_TYPES",
    "FEATURE_TYPES",
    "SAMPLE_FORMATS",
    "AudioExample",
    "decode_example",
    "decode_fields",
    "encode_example",
    "record_features",
    "tf_feature_spec",
]

# sample format -> (numpy dtype string, bytes per sample)
SAMPLE_FORMATS: dict[str, tuple[str, int]] = {"int16": ("<i2", 2), "float32": ("<f4", 4)}

# Every feature name the format defines, and its wire type. Kept columns may not use these names.
FEATURE_TYPES: dict[str, str] = {
    "audio": "bytes",
    "blob": "bytes",
    "group": "bytes",
    "label": "int64",
    "label_name": "bytes",
    "label_names": "bytes_list",
    "labels": "int64_list",
    "num_channels": "int64",
    "num_frames": "int64",
    "sample_rate": "int64",
    "segment_end": "int64",
    "segment_start": "int64",
    "source_sample_rate": "int64",
    "text": "bytes",
    "window_offset": "int64",
}
# A kept column's type (--column-types) -> its wire type. Floats are float32: tf.train.Example has no doubles.
COLUMN_TYPES: dict[str, str] = {"str": "bytes", "int": "int64", "float": "float32"}
_PROVENANCE = ("source_sample_rate", "segment_start", "segment_end", "window_offset")


@dataclass(frozen=True)
class AudioExample:
    """One decoded record; `audio` stays raw bytes so writer and verifier never copy samples.

    Optional fields are None (or empty) when the record does not hold that feature; `columns` are
    the kept manifest columns as (name, value) pairs sorted by name.
    """

    audio: bytes
    label: int | None
    sample_rate: int
    num_channels: int
    num_frames: int
    blob: str
    label_name: str | None = None
    labels: tuple[int, ...] | None = None
    label_names: tuple[str, ...] | None = None
    text: str | None = None
    source_sample_rate: int | None = None
    segment_start: int | None = None
    segment_end: int | None = None
    window_offset: int | None = None
    group: str | None = None
    columns: tuple[tuple[str, str | int | float], ...] = ()

    @property
    def label_keys(self) -> list[str]:
        """The labels as dataset.json counts them: names, or integers as text (none when unlabeled)."""
        if self.labels is not None:
            return list(self.label_names) if self.label_names is not None else [str(v) for v in self.labels]
        if self.label is None:
            return []
        return [self.label_name if self.label_name is not None else str(self.label)]


def record_features(
    *,
    label_kind: str,
    text: bool = False,
    segments: bool = False,
    windows: bool = False,
    group: bool = False,
    columns: dict[str, str] | None = None,
) -> dict[str, str]:
    """The features (name -> wire type) of every record of a dataset, as dataset.json lists them.

    Args:
        label_kind: "int" or "string" (single-label), "multi_int" or "multi_string", or "none".
        text: records hold `text`.
        segments: records hold the provenance features (segments or windows).
        windows: records also hold `window_offset`.
        group: records hold `group` (--split-by).
        columns: kept columns, name -> "str", "int" or "float".
    """
    names = ["audio", "blob", "num_channels", "num_frames", "sample_rate"]
    names += {
        "int": ["label"],
        "string": ["label", "label_name"],
        "multi_int": ["labels"],
        "multi_string": ["labels", "label_names"],
        "none": [],
    }[label_kind]
    if text:
        names.append("text")
    if segments or windows:
        names += ["source_sample_rate", "segment_start", "segment_end"]
    if windows:
        names.append("window_offset")
    if group:
        names.append("group")
    features = {name: FEATURE_TYPES[name] for name in names}
    for name, kind in (columns or {}).items():
        features[name] = COLUMN_TYPES[kind]
    return dict(sorted(features.items()))


# --- protobuf wire format (tf.train.Example) ---------------------------------------------------
# Example{1: Features{1: map<string, Feature>}}; map entry {1: key, 2: value};
# Feature{1: BytesList{1: repeated bytes}, 2: FloatList{1: packed float}, 3: Int64List{1: packed int64}}.


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


def _bytes_list_feature_parts(values: tuple[bytes, ...]) -> list[bytes]:
    items = [_length_delimited(0x0A, len(value)) + value for value in values]
    bytes_list_len = sum(map(len, items))
    return [_length_delimited(0x0A, bytes_list_len), *items]


def _int64_feature_parts(value: int) -> list[bytes]:
    return _int64_list_feature_parts((value,))


def _int64_list_feature_parts(values: tuple[int, ...]) -> list[bytes]:
    packed = b"".join(_varint(value) for value in values)
    int64_list = _length_delimited(0x0A, len(packed)) + packed if values else b""
    return [_length_delimited(0x1A, len(int64_list)) + int64_list]


def _float_feature_parts(value: float) -> list[bytes]:
    packed = struct.pack("<f", value)
    float_list = _length_delimited(0x0A, len(packed)) + packed
    return [_length_delimited(0x12, len(float_list)) + float_list]


def _entry_parts(key: str, feature_parts: list[bytes]) -> list[bytes]:
    key_bytes = key.encode()
    feature_len = sum(map(len, feature_parts))
    head = _length_delimited(0x0A, len(key_bytes)) + key_bytes + _length_delimited(0x12, feature_len)
    return [_length_delimited(0x0A, len(head) + feature_len), head, *feature_parts]


def _column_parts(value: str | int | float) -> list[bytes]:
    if isinstance(value, str):
        return _bytes_feature_parts(value.encode())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a kept column holds {type(value).__name__}, not str, int or float")
    return _int64_feature_parts(value) if isinstance(value, int) else _float_feature_parts(value)


def encode_example(example: AudioExample) -> bytes:
    """Serializes an example as a `tf.train.Example`, copying the audio bytes exactly once.

    Features are written in the order of their names, so a record that holds only the features of
    format_version 1 is byte-identical to what version 1 wrote.
    """
    features: dict[str, list[bytes]] = {
        "audio": _bytes_feature_parts(example.audio),
        "blob": _bytes_feature_parts(example.blob.encode()),
        "num_channels": _int64_feature_parts(example.num_channels),
        "num_frames": _int64_feature_parts(example.num_frames),
        "sample_rate": _int64_feature_parts(example.sample_rate),
    }
    if example.label is not None:
        features["label"] = _int64_feature_parts(example.label)
    if example.label_name is not None:
        features["label_name"] = _bytes_feature_parts(example.label_name.encode())
    if example.labels is not None:
        features["labels"] = _int64_list_feature_parts(example.labels)
    if example.label_names is not None:
        features["label_names"] = _bytes_list_feature_parts(tuple(name.encode() for name in example.label_names))
    if example.text is not None:
        features["text"] = _bytes_feature_parts(example.text.encode())
    for name in _PROVENANCE:
        value = getattr(example, name)
        if value is not None:
            features[name] = _int64_feature_parts(value)
    if example.group is not None:
        features["group"] = _bytes_feature_parts(example.group.encode())
    for name, value in example.columns:
        if name in FEATURE_TYPES:
            raise ValueError(f"kept column {name!r} has the name of a feature of the format")
        features[name] = _column_parts(value)
    entries: list[bytes] = []
    for name in sorted(features):
        entries += _entry_parts(name, features[name])
    features_len = sum(map(len, entries))
    return b"".join([_length_delimited(0x0A, features_len), *entries])


# Parsing walks the bytes by position: no memoryview slices and no generators, since this runs once
# per record in every reader (random access included) and Python call overhead dominates it.


def _varint_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the varint at `pos`."""
    if pos + 2 < end:  # most varints here are one byte (tags, short lengths), many two or three
        first = buf[pos]
        if first < 0x80:
            return first, pos + 1
        second = buf[pos + 1]
        if second < 0x80:
            return (first & 0x7F) | second << 7, pos + 2
        third = buf[pos + 2]
        if third < 0x80:
            return (first & 0x7F) | (second & 0x7F) << 7 | third << 14, pos + 3
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _field_at(buf: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """The field at `pos`: (number, wire type, a, b). For a varint a is its value and b the next
    position; for the other wire types [a, b) is the value's byte range, and b the next position."""
    key = buf[pos]  # callers loop while pos < end; one-byte varints are read inline
    if key < 0x80:
        pos += 1
    else:
        key, pos = _varint_at(buf, pos, end)
    wire_type = key & 7
    if wire_type == 2:
        if pos < end and buf[pos] < 0x80:
            length, pos = buf[pos], pos + 1
        else:
            length, pos = _varint_at(buf, pos, end)
        stop = pos + length
    elif wire_type == 0:
        value, stop = _varint_at(buf, pos, end)
        return key >> 3, 0, value, stop
    elif wire_type == 1:
        stop = pos + 8
    elif wire_type == 5:
        stop = pos + 4
    else:
        raise ValueError(f"unsupported wire type {wire_type}")
    if stop > end:
        raise ValueError("truncated field")
    return key >> 3, wire_type, pos, stop


def _signed(raw: int) -> int:
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _decode_feature(buf: bytes, start: int, stop: int) -> tuple[str, list[Any]]:
    """The Feature in buf[start:stop] as (wire type name, its values)."""
    pos = start
    while pos < stop:
        kind, wire_type, list_start, list_stop = _field_at(buf, pos, stop)
        pos = list_stop
        if wire_type != 2 or kind not in (1, 2, 3):
            continue
        values: list[Any] = []
        item = list_start
        while item < list_stop:
            number, item_wire, a, b = _field_at(buf, item, list_stop)
            item = b
            if number != 1:
                continue
            if kind == 1:
                if item_wire != 2:
                    raise ValueError("bytes list with a bad wire type")
                values.append(buf[a:b])
            elif kind == 3:
                if item_wire == 0:
                    values.append(_signed(a))
                elif item_wire == 2:
                    packed = a
                    while packed < b:
                        raw, packed = _varint_at(buf, packed, b)
                        values.append(_signed(raw))
                else:
                    raise ValueError("int64 list with a bad wire type")
            else:
                if item_wire not in (2, 5) or (b - a) % 4:
                    raise ValueError("float list with a bad wire type or length")
                values += struct.unpack_from(f"<{(b - a) // 4}f", buf, a)
        return ("bytes", "float32", "int64")[kind - 1], values
    raise ValueError("empty or unsupported feature")


def _generic_features(buf: bytes) -> dict[str, tuple[str, list[Any]]]:
    """Example{1: Features{1: map<string, Feature>}} as {name: (wire type name, values)}, for any valid encoding."""
    end = len(buf)
    features: dict[str, tuple[str, list[Any]]] = {}
    pos = 0
    while pos < end:
        number, wire_type, start, pos = _field_at(buf, pos, end)
        if number != 1 or wire_type != 2:
            continue
        entry = start
        while entry < pos:
            _, entry_wire, entry_start, entry_stop = _field_at(buf, entry, pos)
            entry = entry_stop
            if entry_wire != 2:
                raise ValueError("a feature map entry is not a message")
            key = value = None
            inner = entry_start
            while inner < entry_stop:
                inner_number, inner_wire, a, b = _field_at(buf, inner, entry_stop)
                inner = b
                if inner_wire != 2:
                    continue
                if inner_number == 1:
                    key = buf[a:b].decode()
                elif inner_number == 2:
                    value = _decode_feature(buf, a, b)
            if key is not None and value is not None:
                features[key] = value
    return features


def _canonical_features(buf: bytes, audio_view: memoryview | None) -> dict[str, tuple[str, list[Any]]] | None:
    """The same as `_generic_features` in one pass without calls, for the canonical encoding that
    this module and TensorFlow write (each field once, in field order, lists packed); None for
    anything else, which `_generic_features` then parses or refuses. With `audio_view` (a view of
    `buf`), the audio is a slice of it rather than a copy.

    Random access spends most of its Python time here: the generic walk costs ~30 calls a record.
    """
    end = len(buf)
    if end < 2 or buf[0] != 0x0A:
        return None
    length, pos = (buf[1], 2) if buf[1] < 0x80 else _varint_at(buf, 1, end)
    if pos + length != end:
        return None
    features: dict[str, tuple[str, list[Any]]] = {}
    while pos < end:  # map entries: 0x0A len {0x0A len key, 0x12 len Feature{tag len list}}
        if buf[pos] != 0x0A:
            return None
        length, pos = (buf[pos + 1], pos + 2) if buf[pos + 1] < 0x80 else _varint_at(buf, pos + 1, end)
        entry_end = pos + length
        key_end = pos + 2 + buf[pos + 1]
        if entry_end > end or buf[pos] != 0x0A or buf[pos + 1] >= 0x80 or key_end + 4 > entry_end:
            return None
        key = buf[pos + 2 : key_end].decode()
        if buf[key_end] != 0x12:
            return None
        length, pos = (buf[key_end + 1], key_end + 2) if buf[key_end + 1] < 0x80 else _varint_at(buf, key_end + 1, end)
        if pos + length != entry_end:
            return None
        kind = buf[pos]
        view = audio_view if key == "audio" else None
        length, item = (buf[pos + 1], pos + 2) if buf[pos + 1] < 0x80 else _varint_at(buf, pos + 1, end)
        if item + length != entry_end:
            return None
        values: list[Any] = []
        if kind == 0x0A:  # BytesList: each value 0x0A len bytes
            while item < entry_end:
                if buf[item] != 0x0A:
                    return None
                length, item = (buf[item + 1], item + 2) if buf[item + 1] < 0x80 else _varint_at(buf, item + 1, end)
                if item + length > entry_end:
                    return None
                values.append(buf[item : item + length] if view is None else view[item : item + length])
                item += length
            features[key] = ("bytes", values)
        elif kind == 0x1A:  # Int64List: one packed run, 0x0A len varints
            if item < entry_end:
                if buf[item] != 0x0A or buf[item + 1] >= 0x80 or item + 2 + buf[item + 1] != entry_end:
                    return None
                item += 2
                while item < entry_end:
                    if buf[item] < 0x80:
                        values.append(buf[item])
                        item += 1
                    else:
                        raw, item = _varint_at(buf, item, entry_end)
                        values.append(_signed(raw))
            features[key] = ("int64", values)
        elif kind == 0x12:  # FloatList: one packed run, 0x0A len float32s
            if item < entry_end:
                length = buf[item + 1]
                if buf[item] != 0x0A or length >= 0x80 or length % 4 or item + 2 + length != entry_end:
                    return None
                values += struct.unpack_from(f"<{length // 4}f", buf, item + 2)
            features[key] = ("float32", values)
        else:
            return None
        pos = entry_end
    return features


def _features(data: bytes, audio_view: bool) -> dict[str, tuple[str, list[Any]]]:
    buf = data if isinstance(data, bytes) else bytes(data)
    try:
        found = _canonical_features(buf, memoryview(buf) if audio_view else None)
    except (IndexError, ValueError):  # cut short or not UTF-8: the generic walk names what is wrong
        found = None
    return _generic_features(buf) if found is None else found


# feature -> (wire type of its values, whether it is a list, whether its values are UTF-8 text), so
# that the decoder checks and converts each feature in one lookup
_DECODING = {
    name: (
        kind.removesuffix("_list"),
        kind.endswith("_list"),
        name in ("blob", "label_name", "text", "group", "label_names"),
    )
    for name, kind in FEATURE_TYPES.items()
}
_REQUIRED = ("audio", "sample_rate", "num_channels", "num_frames", "blob")
_REQUIRED_KEYS = frozenset(_REQUIRED)


def _text(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"feature {name!r} is not UTF-8") from None


def decode_example(data: bytes) -> AudioExample:
    """Parses a serialized record back into an AudioExample.

    Raises:
        ValueError: if the bytes are not a record of this format (missing or mistyped feature).
    """
    fields = decode_fields(data)
    return AudioExample(label=fields.pop("label", None), **fields)


def decode_fields(data: bytes, *, audio_view: bool = False) -> dict[str, Any]:
    """The record's features as {AudioExample field: value}, only those the record holds (no Nones),
    checked as `decode_example` checks them; for readers that build their own objects.

    With `audio_view`, `audio` is a read-only memoryview of `data` rather than a copy of its bytes
    when the record is canonically encoded (always for records this module or TensorFlow wrote),
    for readers that wrap it in NumPy at once.

    Raises:
        ValueError: if the bytes are not a record of this format (missing or mistyped feature).
    """
    fields: dict[str, Any] = {}
    columns = []
    for name, (kind, values) in _features(data, audio_view).items():  # only what the record holds
        decoding = _DECODING.get(name)
        if decoding is None:
            if len(values) != 1:
                raise ValueError(f"column {name!r} holds {len(values)} values, expected 1")
            columns.append((name, _text(values[0], name) if kind == "bytes" else values[0]))
            continue
        expected, is_list, is_text = decoding
        if kind != expected:
            raise ValueError(f"feature {name!r} has type {kind}, expected {expected}")
        if is_list:
            fields[name] = tuple(_text(value, name) for value in values) if is_text else tuple(values)
        elif len(values) != 1:
            raise ValueError(f"feature {name!r} holds {len(values)} values, expected 1")
        else:
            fields[name] = _text(values[0], name) if is_text else values[0]
    if not fields.keys() >= _REQUIRED_KEYS:
        missing = next(name for name in _REQUIRED if name not in fields)
        raise ValueError(f"record has no feature {missing!r}")
    if columns:
        columns.sort()
        fields["columns"] = tuple(columns)
    return fields


def tf_feature_spec(with_label_name: bool = False, *, features: dict[str, str] | None = None) -> dict[str, Any]:
    """The `tf.io.parse_example` spec for this format (imports TensorFlow, so readers only).

    Args:
        with_label_name: a format_version 1 dataset with string labels (ignored with `features`).
        features: the dataset's features as dataset.json lists them (`content.features`); lists
            become `tf.io.RaggedFeature`s, so each parsed example holds a 1-D tensor of its own length.
    """
    import tensorflow as tf

    if features is None:
        features = record_features(label_kind="string" if with_label_name else "int")
    dtypes = {"bytes": tf.string, "int64": tf.int64, "float32": tf.float32}
    spec: dict[str, Any] = {}
    for name, kind in features.items():
        if kind.endswith("_list"):
            spec[name] = tf.io.RaggedFeature(dtypes[kind.removesuffix("_list")])
        else:
            spec[name] = tf.io.FixedLenFeature([], dtypes[kind])
    return spec
