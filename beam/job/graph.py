r"""The Beam graph: manifest rows in, shards + rejected report + dataset.json out.

    ReadManifest | ClassifyRows | DropDuplicates | StatFiles | WriteShards | ResolveEqualAudio | Finalize
                                \ CheckGroups --------------------------------------------------------/

Each step is a composite transform in a module of its own (read, classify, groups, dedupe, stat,
write, equal_audio, finalize); this module only composes them. Only manifest rows are grouped or shuffled: audio is
read, encoded and streamed to a shard file inside one DoFn call (see write.py).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from audioflow.beam.job.classify import ClassifyRows
from audioflow.beam.job.coders import register_row_coders
from audioflow.beam.job.dedupe import DropDuplicates
from audioflow.beam.job.equal_audio import ResolveEqualAudio
from audioflow.beam.job.finalize import Finalize, FinalizeInputs
from audioflow.beam.job.groups import CheckGroups
from audioflow.beam.job.read import ReadManifest
from audioflow.beam.job.resume import RunState
from audioflow.beam.job.stat import StatFiles
from audioflow.beam.job.write import WriteShards
from audioflow.beam.prep.options import IngestOptions

__all__ = ["IngestDataset", "temp_folder"]


def temp_folder(options: IngestOptions, run_id: str) -> str:
    """Where shards are written before Finalize renames them; removed when the job completes."""
    return FileSystems.join(options.output, f"_temporary-{run_id}")


class IngestDataset(beam.PTransform):
    """The whole ingestion job as one composite transform: PBegin -> DatasetInfo (one)."""

    def __init__(
        self,
        options: IngestOptions,
        run_id: str,
        tool: dict[str, Any],
        *,
        spread_rows: bool = True,
        run_state: RunState | None = None,
    ):
        """`spread_rows=False` drops the SpreadRows reshuffle, for the local runner: it has no workers
        to spread rows over there, yet it shuffles every row (bench/RESULTS.md). The dataset is the same.
        With `run_state`, completed shard units are recorded so that --resume can keep them (resume.py)."""
        super().__init__()
        self._options, self._run_id, self._tool = options, run_id, tool
        self._spread_rows, self._run_state = spread_rows, run_state

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        register_row_coders()
        options, temp_dir = self._options, temp_folder(self._options, self._run_id)
        manifest = pbegin | "ReadManifest" >> ReadManifest(
            options.manifest, options.label_column, options.blob_column, options.columns
        )
        # rows: ManifestRow; info: {uri, sha256, num_rows} (one); columns: ManifestColumns (one)
        rows = (manifest.rows | "SpreadRows" >> beam.Reshuffle()) if self._spread_rows else manifest.rows
        # ManifestRow, rebalanced across workers
        classified = rows | "ClassifyRows" >> ClassifyRows(options, manifest.columns)
        # planned: PlannedRow; rejected: Rejection; row_splits: split name per row; policy: LabelPolicy (one)
        groups = classified.planned | "CheckGroups" >> CheckGroups(options)
        # {groups_per_split, crossing} (one): groups of segments or --split-by, and those a split column splits
        unique = classified.planned | "DropDuplicates" >> DropDuplicates()
        # unique: PlannedRow, one per distinct file; rejected: Rejection
        sized = unique.unique | "StatFiles" >> StatFiles(options)
        # rows: PlannedRow with its size; rejected: Rejection
        written = sized.rows | "WriteShards" >> WriteShards(options, temp_dir, self._run_state)
        # shards: ShardWritten per temporary file; rejected: Rejection; hashes: (hash bucket, [HashedRecord])
        resolved = (written.shards, written.hashes) | "ResolveEqualAudio" >> ResolveEqualAudio(options)
        # shards: ShardWritten without the rows rejected by content; rejected: Rejection; groups: EqualAudioGroup
        each_step = (classified.rejected, unique.rejected, sized.rejected, written.rejected, resolved.rejected)
        rejected = each_step | "AllRejections" >> beam.Flatten()
        # Rejection, from every step
        inputs = FinalizeInputs(
            shards=resolved.shards,
            rejected=rejected,
            row_splits=classified.row_splits,
            policy=classified.policy,
            manifest_info=manifest.info,
            manifest_columns=manifest.columns,
            groups=groups,
            equal_audio=resolved.groups,
        )
        return inputs | "Finalize" >> Finalize(options, temp_dir, self._tool)
        # DatasetInfo (one), also written as dataset.json
