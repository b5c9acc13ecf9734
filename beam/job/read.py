"""ReadManifest: the CSV manifest streamed into rows on a worker, and its identity for dataset.json."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from audioflow.beam.job.metrics import NAMESPACE
from audioflow.beam.prep.columns import ColumnSpec
from audioflow.beam.prep.manifest import HashingReader, ManifestColumns, ManifestRow, iter_manifest_rows

__all__ = ["Manifest", "ReadManifest"]

_LOGGER = logging.getLogger(__name__)
_INFO = "manifest_info"  # the tag of ParseCsv's second output
_COLUMNS = "manifest_columns"  # and of its third


class Manifest(NamedTuple):
    """What ReadManifest outputs."""

    rows: beam.PCollection  # ManifestRow
    info: beam.PCollection  # {uri, sha256, num_rows} (one)
    columns: beam.PCollection | None = None  # ManifestColumns (one): which columns the manifest has


class _ReadManifestFn(beam.DoFn):
    """Streams the CSV from any Beam filesystem on a worker (never embedded in the job graph)."""

    def __init__(self, label_column: str | None, blob_column: str | None, columns: ColumnSpec):
        self._label_column = label_column
        self._blob_column = blob_column
        self._columns = columns
        self._rows = Metrics.counter(NAMESPACE, "manifest_rows")

    def process(self, uri: str) -> Iterator[Any]:
        with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as raw:
            hashing = HashingReader(raw)
            count = 0
            found: list[ManifestColumns] = []
            rows = iter_manifest_rows(
                hashing,
                self._label_column,
                self._blob_column,
                name=uri,
                split_by=self._columns.split_by,
                keep=self._columns.keep,
                on_columns=found.append,
            )
            for row in rows:
                count += 1
                self._rows.inc()
                if count % 100_000 == 0:
                    _LOGGER.info("manifest: %d rows read", count)
                yield row
            while hashing.read(1 << 20):  # hash whatever follows the last row (trailing blank lines)
                pass
        yield TaggedOutput(_INFO, {"uri": uri, "sha256": hashing.sha256.hexdigest(), "num_rows": count})
        yield TaggedOutput(_COLUMNS, found[0])


class ReadManifest(beam.PTransform):
    """PBegin -> Manifest: every data row of the CSV at `uri`, the file's hash and row count, and its columns."""

    def __init__(self, uri: str, label_column: str | None, blob_column: str | None, columns: ColumnSpec | None = None):
        super().__init__()
        self._uri, self._label_column, self._blob_column = uri, label_column, blob_column
        self._columns = columns or ColumnSpec()

    def expand(self, pbegin: beam.pvalue.PBegin) -> Manifest:
        parsed = (
            pbegin
            | "ManifestUri" >> beam.Create([self._uri])
            | "ParseCsv"
            >> beam.ParDo(_ReadManifestFn(self._label_column, self._blob_column, self._columns))
            .with_output_types(ManifestRow, **{_INFO: dict[str, Any], _COLUMNS: Any})
            .with_outputs(_INFO, _COLUMNS, main="rows")
        )
        return Manifest(rows=parsed.rows, info=parsed[_INFO], columns=parsed[_COLUMNS])
