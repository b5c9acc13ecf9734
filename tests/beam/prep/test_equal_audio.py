"""Resolving a group of equal audio: which row is first, what each policy rejects, what dataset.json counts."""

from __future__ import annotations

import random

import pytest

from audioflow.beam.prep.equal_audio import MEMBERS_SHOWN, HashedRecord, resolve_group


def record(line: int, label: str, split: str = "train", blob: str | None = None) -> HashedRecord:
    return HashedRecord("ab" * 16, line, blob or f"r{line}.wav", label, label, split, f"/tmp/s-{line % 2}", line)


GROUP = [record(9, "dog"), record(4, "dog"), record(7, "cat", "test"), record(12, "dog", "test")]


def outcomes(dedupe: str, policy: str) -> dict[int, str]:
    resolution = resolve_group(random.sample(GROUP, len(GROUP)), dedupe, policy)
    return {member.line: member.outcome for member in resolution.group.members}


def test_the_first_row_is_the_lowest_manifest_line_whatever_the_arrival_order():
    for seed in range(5):
        random.seed(seed)
        assert outcomes("content", "warn") == {
            4: "kept",
            7: "duplicate_content",
            9: "duplicate_content",
            12: "duplicate_content",
        }


@pytest.mark.parametrize(
    ("dedupe", "policy", "expected"),
    [
        ("path", "warn", {4: "kept", 7: "kept", 9: "kept", 12: "kept"}),
        ("path", "keep-first", {4: "kept", 7: "label_conflict", 9: "kept", 12: "kept"}),
        ("path", "reject-all", dict.fromkeys((4, 7, 9, 12), "label_conflict")),
        ("content", "keep-first", {4: "kept", 7: "label_conflict", 9: "duplicate_content", 12: "duplicate_content"}),
        ("content", "reject-all", dict.fromkeys((4, 7, 9, 12), "label_conflict")),
    ],
)
def test_each_policy(dedupe, policy, expected):
    assert outcomes(dedupe, policy) == expected


def test_messages_name_the_first_row_and_the_labels():
    resolution = resolve_group(GROUP, "content", "keep-first")
    messages = {rejection.line: rejection.message for _, rejection in resolution.rejected}
    assert messages[9] == "line 9: 'r9.wav' has the same audio as line 4 ('r4.wav'), which was kept"
    assert messages[7].startswith("line 7: 'r7.wav' has the same audio as line 4 ('r4.wav'), which was kept with")
    assert "'dog'" in messages[7] and "'cat'" in messages[7]
    all_rejected = resolve_group(GROUP, "path", "reject-all")
    first = next(rejection for _, rejection in all_rejected.rejected if rejection.line == 4)
    assert "line 7 ('r7.wav') under label 'cat', not 'dog'" in first.message


def test_the_group_summary_counts_conflicts_and_leakage():
    group = resolve_group(GROUP, "path", "warn").group
    assert (group.num_rows, group.labels, group.num_rejected) == (4, ("cat", "dog"), 0)
    assert group.kept_splits == (("test", 2), ("train", 2)) and group.conflicting and group.leaking
    kept_first = resolve_group(GROUP, "content", "warn").group
    assert kept_first.kept_splits == (("train", 1),) and not kept_first.leaking and kept_first.conflicting


def test_a_single_row_is_no_group_and_large_groups_list_the_first_rows():
    assert resolve_group([record(3, "dog")], "content", "reject-all").group is None
    big = resolve_group([record(line, "dog") for line in range(100, 2, -1)], "content", "warn")
    assert big.group.num_rows == 98 and len(big.group.members) == MEMBERS_SHOWN
    assert [member.line for member in big.group.members] == list(range(3, 3 + MEMBERS_SHOWN))
    assert len(big.rejected) == 97
