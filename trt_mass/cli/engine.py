"""`trtmass build-engine` and `trtmass engine-info`: thin click commands over trt_mass.engine.

tensorrt and cuda-python are imported inside the library calls, never when the CLI is loaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors
from trt_mass.errors import ModelError


@click.command("build-engine")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--profile", "profile_spec", default=None,
              help="Build profile: build_engine/NAME.toml, or NAME (looked up in ./build_engine and the source tree) "
                   "[default: the profile listing this GPU's compute capability and the model's precision].")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The engine file to write (e.g. model.plan); its sidecar goes to OUTPUT.json.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Timing cache file (overrides the profile's).")
@click.option("--workspace-mib", type=click.IntRange(min=16), default=None,
              help="Builder workspace limit in MiB (overrides the profile's).")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None,
              help="Builder optimization level 0..5 (overrides the profile's).")
@click.option("-v", "--verbose", is_flag=True, help="TensorRT's verbose builder log.")
@maps_errors
def build_engine(model: Path, profile_spec: str | None, output: Path, timing_cache: Path | None,
                 workspace_mib: int | None, opt_level: int | None, verbose: bool) -> None:
    """Build a TensorRT engine from a trt_mass ONNX, on the GPU that will run it.

    Precision comes from the ONNX variant (`trtmass quantize`), never from a builder flag: the profile
    lists the precisions it accepts and anything else is refused, as is a uint16 canvas (re-export with
    --canvas-dtype int32).  Writes OUTPUT and OUTPUT.json (hashes, GPU, TensorRT version, profile).
    """
    from trt_mass.engine.build import build_engine as build
    from trt_mass.engine.gpu import import_tensorrt, require_gpu
    from trt_mass.engine.profiles import load_profile, pick_profile
    from trt_mass.metadata import read_onnx_metadata

    if profile_spec is None:
        import_tensorrt()  # without TensorRT or a GPU: exit 5 before anything else
        gpu = require_gpu()
        chosen = pick_profile(read_onnx_metadata(model), gpu.compute_capability)
        click.echo(f"profile: {chosen.name} (lists {gpu.describe()} and {chosen.precisions})", err=True)
        profile_spec = chosen.source
    profile = load_profile(profile_spec).with_overrides(
        workspace_mib=workspace_mib, builder_optimization_level=opt_level, timing_cache=timing_cache)
    sidecar = build(model, profile, output, verbose=verbose)
    size_mib = (sidecar.engine_bytes or 0) / (1 << 20)
    click.echo(f"wrote {output} ({size_mib:.1f} MiB, sha256 {sidecar.engine_sha256[:16]}…) and {output.name}.json in "
               f"{sidecar.build.build_seconds} s: {sidecar.model_metadata.model_id}, profile {profile.name}, "
               f"{sidecar.gpu_name} (compute capability {sidecar.compute_capability}), TensorRT "
               f"{sidecar.tensorrt_version}")


@click.command("engine-info")
@click.argument("engine", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder engines may be loaded from (default: the engine's folder).")
@click.option("--allow-engine-host-code", is_flag=True, help="Check as if engine host code were allowed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the sidecar and the checks.")
@maps_errors
def engine_info(engine: Path, model_dir: Path | None, allow_engine_host_code: bool, as_json: bool) -> None:
    """Print an engine's sidecar and whether it may run on this machine (exit code 4 when it may not)."""
    from trt_mass.engine.checks import LoadContext, engine_checks, rebuild_command
    from trt_mass.engine.gpu import probe_gpu, tensorrt_version
    from trt_mass.engine.sidecar import read_sidecar

    sidecar = read_sidecar(engine)
    gpu, gpu_problem = probe_gpu()
    version, tensorrt_problem = tensorrt_version()
    if tensorrt_problem and tensorrt_problem != "tensorrt is not installed":
        click.echo(f"note: {tensorrt_problem}", err=True)  # report, do not crash: this command finds out what is wrong
    folder = model_dir if model_dir is not None else engine.parent
    checks = engine_checks(sidecar, engine, LoadContext(gpu, version, folder, allow_engine_host_code))
    usable = all(check.ok for check in checks)
    if as_json:
        click.echo(json.dumps({"sidecar": sidecar.to_dict(), "usable": usable,
                               "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
                               "this_machine": {"gpu": gpu.to_dict() if gpu else None, "gpu_problem": gpu_problem,
                                                "tensorrt_version": version}}, indent=2))
    else:
        build = sidecar.build
        click.echo(f"engine:      {engine} ({sidecar.engine_bytes} bytes, sha256 {sidecar.engine_sha256})")
        click.echo(f"model:       {sidecar.model_metadata.model_id} from {sidecar.source_onnx} "
                   f"(sha256 {sidecar.source_onnx_sha256[:16]}…), precision {sidecar.model_metadata.precision}, "
                   f"calibration {sidecar.model_metadata.calibration_sha256 or '-'}")
        geometry = sidecar.model_metadata.graph_spec.geometry
        click.echo(f"geometry:    tile {geometry.tile_h}x{geometry.tile_w}, grid {geometry.grid}, "
                   f"inputs {[(t.name, t.dtype, t.shape) for t in sidecar.model_metadata.inputs]}")
        click.echo(f"built for:   {sidecar.gpu_name} (compute capability {sidecar.compute_capability}), TensorRT "
                   f"{sidecar.tensorrt_version}, profile {build.profile_name}, hardware compatibility "
                   f"{build.hardware_compatibility_level}, version compatible {build.version_compatible}")
        click.echo(f"built:       {sidecar.created} by trt_mass {sidecar.trt_mass_version}")
        here = gpu.describe() if gpu else f"no GPU ({gpu_problem})"
        click.echo(f"this machine: {here}, TensorRT {version or 'not installed'}")
        for check in checks:
            click.echo(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if not usable:
            click.echo(f"to rebuild here: {rebuild_command(sidecar, engine, folder)}")
    if not usable:
        sys.exit(ModelError.exit_code)
