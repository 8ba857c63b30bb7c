"""`trtmass triton-repo` and `trtmass serve`: the engine graph on a Triton Inference Server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trt_mass.cli.errors import maps_errors


@click.command("triton-repo")
@click.argument("onnx", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The model repository folder (other models in it are left alone).")
@click.option("--engine", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Serve this TensorRT plan (built from ONNX by trtmass build-engine, sidecar beside it) instead of "
                   "the ONNX; it must have been built on the server's GPU model with its TensorRT version.")
@click.option("--name", default="trt_mass", show_default=True, help="The model name clients ask for.")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model instances (Triton's instance_group count).")
@click.option("--device", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="Where the instances run (auto: a GPU when the server has one; a plan always runs on a GPU).")
@click.option("--force", is_flag=True, help="Replace an existing model folder of that name.")
@maps_errors
def triton_repo(onnx: Path, out_dir: Path, engine: Path | None, name: str, instances: int, device: str,
                force: bool) -> None:
    """Write a Triton model repository: NAME/config.pbtxt (from the model's metadata) and NAME/1/model.onnx or
    model.plan.  Serve it with NVIDIA's container, e.g.

      docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD/REPO:/models
      nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models
    """
    from trt_mass.serving.repository import RepositoryConfig, write_repository

    repository = write_repository(RepositoryConfig(onnx=onnx, out=out_dir, engine=engine, name=name,
                                                   instances=instances, device=device, force=force))
    click.echo(f"{repository.model_dir}: {repository.platform}, {repository.metadata.model_id}")
    click.echo(f"config: {repository.config_path}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", default="trt_mass", show_default=True, help="The model name clients ask for.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the endpoints listen on (0.0.0.0: every interface).")
@click.option("--port", "http_port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="HTTP port (KServe v2 protocol).")
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True, help="gRPC port.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8002, show_default=True,
              help="Prometheus metrics port.")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model instances, each its own process with an ONNX Runtime session.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads per instance [default: one per physical core].")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the repository and backend are laid out [default: a temporary folder].")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write tritonserver's log here [default: this process's stderr].")
@maps_errors
def serve(model: Path, name: str, host: str, http_port: int, grpc_port: int, metrics_port: int, instances: int,
          threads: int | None, workdir: Path | None, log_path: Path | None) -> None:
    """Serve MODEL (.onnx) from a real Triton Inference Server that runs it with ONNX Runtime, until SIGTERM.

    Needs the tritonserver of the nvidia-pytriton wheel (pip install --no-deps nvidia-pytriton==0.7.0).
    Clients: trtmass detect/watch/bench --backend triton --triton-url grpc://HOST:GRPC_PORT --model MODEL.
    """
    from trt_mass.daemon.sdnotify import Notifier
    from trt_mass.serving.server import ServeConfig, TritonServer, stop_signals_raise

    config = ServeConfig(model=model, name=name, host=host, http_port=http_port, grpc_port=grpc_port,
                         metrics_port=metrics_port, instances=instances, threads=threads, workdir=workdir)
    server = TritonServer(config, log_path=log_path)
    notifier = Notifier()
    with stop_signals_raise():
        try:
            with server:
                assert server.metadata is not None and server.process is not None
                message = (f"serving {server.metadata.model_id} as {name!r}: {config.grpc_url} {config.http_url} "
                           f"(metrics on port {metrics_port})")
                click.echo(message, err=True)
                notifier.ready(message)
                code = server.process.wait()
                click.echo(f"trtmass: error: tritonserver exited with {code}", err=True)
                sys.exit(8)
        except KeyboardInterrupt:
            notifier.stopping()
            click.echo("stopped", err=True)
