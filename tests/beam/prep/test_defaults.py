"""The options table: every default is a valid value by its own rules, which the job accepts too."""

from __future__ import annotations

import re

import pytest

from audioflow.beam.prep.defaults import COMPONENT_DEFAULTS, INGEST_OPTIONS, PIPELINE_DEFAULTS, option
from audioflow.beam.prep.options import build_ingest_options


@pytest.mark.parametrize("entry", INGEST_OPTIONS, ids=lambda entry: entry.name)
def test_each_default_passes_its_own_rules(entry):
    for defaults in (COMPONENT_DEFAULTS, PIPELINE_DEFAULTS):
        value = defaults[entry.name]
        assert isinstance(value, entry.kind), (entry.name, value)
        if entry.choices:
            assert value in entry.choices
        if entry.pattern and value != "":
            assert re.match(entry.pattern, str(value)), (entry.name, value)


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("splits", "train=0.8,validation=0.1,test=0.1", True),
        ("splits", "train", False),
        ("splits", "a=0.5,b=0.5@salt", False),
        ("shard_size", "64M", True),
        ("shard_size", "1.5GiB", True),
        ("shard_size", "-5", False),
        ("max_file_size", "12 parsecs", False),
        ("max_clipped_fraction", "0.001", True),
        ("max_clipped_fraction", "1", True),
        ("max_clipped_fraction", "1.5", False),
        ("min_rms_dbfs", "-60", True),
        ("min_rms_dbfs", "0", True),
        ("min_rms_dbfs", "6", False),
    ],
)
def test_a_value_the_regex_accepts_is_one_the_job_accepts(tmp_path, name, value, valid):
    """The Flex Template validates with these regexes before our own checks: they must agree."""
    assert bool(re.match(option(name).pattern, value)) is valid
    build = lambda: build_ingest_options(manifest=str(tmp_path / "m.csv"), output=str(tmp_path), **{name: value})  # noqa: E731
    if valid:
        build()
    else:
        with pytest.raises(ValueError):
            build()
