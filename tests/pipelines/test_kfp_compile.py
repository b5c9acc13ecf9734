"""Compiling the pipeline and components: deterministic YAML that loads back with the settings applied."""

from __future__ import annotations

import yaml
from kfp import components

from kfp_helpers import compile_in_subprocess


def test_compile_is_deterministic_and_needs_no_credentials(tmp_path):
    compile_in_subprocess(tmp_path / "a", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent.json")
    compile_in_subprocess(tmp_path / "b", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent.json")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    assert [str(f) for f in files] == [
        "components/ingest_audio.yaml",
        "components/train_audio_classifier.yaml",
        "pipeline.yaml",
    ]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_components_load_back_with_the_image_and_resources_from_settings(tmp_path):
    compile_in_subprocess(
        tmp_path / "out",
        IMAGE="europe-docker.pkg.dev/p/r/audioflow:test",
        TRAIN_ACCELERATOR_TYPE="NVIDIA_TESLA_T4",
        TRAIN_ACCELERATOR_COUNT="2",
        INGEST_MEMORY="8G",
    )
    ingest = components.load_component_from_file(str(tmp_path / "out/components/ingest_audio.yaml"))
    train = components.load_component_from_file(str(tmp_path / "out/components/train_audio_classifier.yaml"))
    inputs = ingest.component_spec.inputs
    assert {"manifest_uri", "audio_root", "splits", "sample_rate", "mono", "runner", "beam_args"} <= set(inputs)
    assert inputs["beam_args"].type == "List" and inputs["sample_rate"].default == 0
    outputs = ingest.component_spec.outputs
    assert outputs["dataset"].type == "system.Dataset@0.0.1"
    assert outputs["report"].type == "system.HTML@0.0.1"
    assert outputs["gcp_resources"].type == "String"
    assert train.component_spec.inputs["dataset"].type == "system.Dataset@0.0.1"
    assert train.component_spec.outputs["classification_metrics"].type == "system.ClassificationMetrics@0.0.1"
    for component in (ingest, train):
        container = component.component_spec.implementation.container
        assert container.image == "europe-docker.pkg.dev/p/r/audioflow:test"
        assert "pip install" not in " ".join(container.command)  # install_kfp_package=False, no packages
    pipeline = yaml.safe_load((tmp_path / "out/pipeline.yaml").read_text())
    executors = pipeline["deploymentSpec"]["executors"]
    train_container = executors["exec-train-audio-classifier"]["container"]
    accelerator = train_container["resources"]["accelerator"]
    assert (accelerator["resourceCount"], accelerator["resourceType"]) == ("2", "NVIDIA_TESLA_T4")
    assert executors["exec-ingest-audio"]["container"]["resources"]["memoryLimit"] == 8.0
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert parameters["manifest_uri"]["parameterType"] == "STRING" and "defaultValue" not in parameters["manifest_uri"]
    assert parameters["epochs"]["defaultValue"] == 15


def test_default_image_names_the_projects_registry(tmp_path):
    compile_in_subprocess(tmp_path / "out", PROJECT_ID="my-proj", REGION="us-central1")
    ingest = components.load_component_from_file(str(tmp_path / "out/components/ingest_audio.yaml"))
    image = ingest.component_spec.implementation.container.image
    assert image.startswith("us-central1-docker.pkg.dev/my-proj/audioflow/audioflow:")


def test_compiled_defaults_are_the_tables_and_the_clis(tmp_path):
    """The defaults table is the one owner: the compiled component, the pipeline and the CLI agree with it."""
    import click
    from click.testing import CliRunner

    from audioflow.beam.cli import main
    from audioflow.beam.prep.defaults import COMPONENT_DEFAULTS, DEFAULTS, INGEST_OPTIONS, PIPELINE_DEFAULTS

    compile_in_subprocess(tmp_path / "out")
    ingest = components.load_component_from_file(str(tmp_path / "out/components/ingest_audio.yaml"))
    inputs = ingest.component_spec.inputs
    required = {name for name, spec in inputs.items() if not spec.optional}
    assert required == {"manifest_uri", "audio_root"}  # the component's interface asks for both
    for entry in INGEST_OPTIONS:
        assert entry.name in inputs, f"the component lacks the ingest option {entry.name}"
        if entry.name not in required:
            assert inputs[entry.name].default == COMPONENT_DEFAULTS[entry.name], entry.name
    pipeline = yaml.safe_load((tmp_path / "out/pipeline.yaml").read_text())
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    for name, parameter in parameters.items():
        if name in PIPELINE_DEFAULTS:
            assert parameter["defaultValue"] == PIPELINE_DEFAULTS[name], name

    ingest_command = main.get_command(None, "ingest")
    context = click.Context(ingest_command)
    cli_defaults = {param.name: param.get_default(context) for param in ingest_command.params}
    for entry in INGEST_OPTIONS:
        assert cli_defaults[entry.name] == DEFAULTS[entry.name], entry.name
    help_text = " ".join(CliRunner().invoke(main, ["ingest", "--help"], terminal_width=200).output.split())
    assert "[default: 128MiB]" in help_text and "[default: 0.01]" in help_text
    # The surfaces differ only where the table says so.
    differing = {name for name in DEFAULTS if COMPONENT_DEFAULTS[name] != DEFAULTS[name]}
    assert differing == {"splits"}
