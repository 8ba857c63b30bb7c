"""`trtmass`: a thin click layer that builds typed configs and calls the library.

One module per command group (model: export/info, detect: detect/synth, watch, training: train/eval,
precision: calib/quantize/compare, engine: build-engine/engine-info, bench, dicomnet: send, serving:
triton-repo/serve).  Heavy packages (torch,
onnx, onnxruntime, tensorrt) are imported inside the commands that need them, so `trtmass --help` stays
fast.  Library errors (TrtMassError) become a one-line message and the error's exit code (errors);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click

from trt_mass.cli.bench import bench
from trt_mass.cli.detect import detect, synth
from trt_mass.cli.dicomnet import send
from trt_mass.cli.engine import build_engine, engine_info
from trt_mass.cli.model import export, info
from trt_mass.cli.precision import calib, compare, quantize
from trt_mass.cli.serving import serve, triton_repo
from trt_mass.cli.training import evaluate, train
from trt_mass.cli.watch import watch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trt_mass")
def main() -> None:
    """Mammogram mass detection with a RetinaNet: export the engine graph, inspect it, detect, make phantoms."""


for command in (export, info, detect, synth, watch, evaluate, train, calib, quantize, compare, build_engine,
                engine_info, bench, send, triton_repo, serve):
    main.add_command(command)

__all__ = ["main"]
