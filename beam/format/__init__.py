"""The dataset contract: records, TFRecord framing, shard names, dataset.json and reject reasons.

The Beam writer, every reader, `inspect --verify`, the report and the KFP components import it from
here, so the contract cannot drift between them. It imports neither Beam nor TensorFlow.
"""

from audioflow.beam.format.dataset_info import (
    EXTENDED_FORMAT_VERSION,
    FORMAT_VERSION,
    METADATA_FILE,
    READABLE_FORMAT_VERSIONS,
    REJECTED_FILE,
    DatasetInfo,
    ShardInfo,
    SplitInfo,
)
from audioflow.beam.format.example import (
    COLUMN_TYPES,
    FEATURE_TYPES,
    SAMPLE_FORMATS,
    AudioExample,
    decode_example,
    decode_fields,
    encode_example,
    record_features,
    tf_feature_spec,
)
from audioflow.beam.format.rejects import REJECT_REASONS, REJECTED_EXAMPLES_PER_REASON
from audioflow.beam.format.shards import (
    COMPRESSIONS,
    is_gzip_shard,
    iter_shard_records,
    parse_shard_name,
    shard_file_name,
)
from audioflow.beam.format.tfrecord import frame_record, iter_records

__all__ = [
    "COLUMN_TYPES",
    "COMPRESSIONS",
    "EXTENDED_FORMAT_VERSION",
    "FEATURE_TYPES",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "READABLE_FORMAT_VERSIONS",
    "REJECTED_EXAMPLES_PER_REASON",
    "REJECTED_FILE",
    "REJECT_REASONS",
    "SAMPLE_FORMATS",
    "AudioExample",
    "DatasetInfo",
    "ShardInfo",
    "SplitInfo",
    "decode_example",
    "decode_fields",
    "encode_example",
    "frame_record",
    "is_gzip_shard",
    "iter_records",
    "iter_shard_records",
    "parse_shard_name",
    "record_features",
    "shard_file_name",
    "tf_feature_spec",
]
