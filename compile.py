"""Compile the pipeline and components to YAML: `python compile.py [--output-dir build]`.

Same as `audioflow compile`; settings come from the environment and .env (IMAGE, resources).
"""

from __future__ import annotations

import argparse

from audioflow.beam.settings import load_env
from audioflow.pipelines.compiler import compile_all

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output-dir", default="build")
    parser.add_argument("--env-file", default=None)
    arguments = parser.parse_args()
    load_env(arguments.env_file)
    for name, path in compile_all(arguments.output_dir).items():
        print(f"{name:<24} {path}")
