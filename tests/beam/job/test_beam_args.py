"""The one parser of Beam arguments: runner names as Beam resolves them, unknown options refused,
and option values kept out of Beam's own log lines."""

from __future__ import annotations

import logging

import pytest

from audioflow.beam.job.beam_args import (
    UnknownOptionError,
    arg_value,
    check_beam_args,
    is_dataflow_runner,
    is_local_runner,
    runner_name,
)
from audioflow.beam.job.launch import make_pipeline
from audioflow.beam.prep.options import build_ingest_options


def test_the_last_runner_wins_as_in_argparse():
    args = ["--runner", "DataflowRunner", "--project=p", "--runner=DirectRunner"]
    assert runner_name(args) == "DirectRunner"
    assert arg_value(args, "--project") == "p" and arg_value(args, "--region") is None


@pytest.mark.parametrize("name", [None, "DirectRunner", "directrunner", "Direct", "FnApiRunner", "fnapi"])
def test_local_runner_names_in_any_spelling_beam_accepts(name):
    assert is_local_runner(name) and not is_dataflow_runner(name)


@pytest.mark.parametrize("name", ["DataflowRunner", "dataflow", "DATAFLOWRUNNER", "TestDataflowRunner"])
def test_dataflow_runner_names(name):
    assert is_dataflow_runner(name) and not is_local_runner(name)


def test_known_beam_options_pass():
    check_beam_args(["--runner", "DataflowRunner", "--project=p", "--num_workers", "3", "--experiments=a,b"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num_worker", "3"], "unknown option --num_worker: .* did you mean --num_workers\\?"),
        (["--sample-rat", "8000"], "unknown option --sample-rat: .* did you mean --sample-rate\\?"),
        (["--zzz=1", "--yyy"], "unknown option --zzz: neither an audioflow option nor a Beam pipeline option"),
    ],
)
def test_unknown_options_are_refused_with_the_closest_known_one(args, message):
    with pytest.raises(UnknownOptionError, match=message):
        check_beam_args(args, known_elsewhere=["--sample-rate"])


def test_beams_own_warning_about_an_unknown_option_shows_no_value(tmp_path, caplog):
    """make_pipeline is public and does not refuse unknown options (run_ingest does): Beam then logs
    them, and their values, which may be credentials, are hidden."""
    caplog.set_level(logging.DEBUG)
    (tmp_path / "labels.csv").write_text("label,blob\n")
    options = build_ingest_options(manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"))
    pipeline = make_pipeline(options, ["--runner=DirectRunner", "--api_token=SECRET42"])
    pipeline.options.get_all_options(display_warnings=True)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "--api_token=…" in logged
    assert "SECRET42" not in logged
