"""The watch service: discovery + decode in a reader thread, inference and writing in the main thread.

Every move is an os.replace inside one filesystem, every result is written to a temporary name and
renamed, so a crash at any moment leaves each input in exactly one folder and no partial result.
On start, inputs left in processing/ go back to incoming/; results are named by SOP Instance UID and
carry the model hash, so reprocessing with the same model writes nothing new (idempotent).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from trt_mass.daemon.config import WatchConfig
from trt_mass.daemon.discovery import Discovery
from trt_mass.daemon.sdnotify import Notifier
from trt_mass.errors import ConfigError, InputError
from trt_mass.inputs.dicom import Mammogram
from trt_mass.outputs.overlay import write_atomic, write_json

FOLDERS = ("incoming", "processing", "done", "results", "failed")


class EventLog:
    """One structured line per event on stdout (journald picks it up): plain key=value or JSON.

    Only file names, UIDs, counts and error reasons are logged: never patient attributes.
    """

    def __init__(self, log_format: str = "plain", stream: TextIO | None = None) -> None:
        self.log_format = log_format
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def event(self, name: str, **fields: Any) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if self.log_format == "json":
            line = json.dumps({"time": stamp, "event": name, **fields}, default=str)
        else:
            line = " ".join([stamp, name] + [f"{k}={json.dumps(v, default=str)}" for k, v in fields.items()])
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


@dataclass
class Counters:
    processed: int = 0
    failed: int = 0
    duplicates: int = 0
    retries: int = 0
    last_error: str | None = None
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@dataclass
class Decoded:
    path: Path  # in processing/
    mammogram: Mammogram | None
    error: InputError | None
    read_ms: float


def unique_target(folder: Path, name: str) -> Path:
    target = folder / name
    number = 1
    while target.exists():
        target = folder / f"{name}.{number}"
        number += 1
    return target


class WatchService:
    """Run with `run()`; `request_stop()` (SIGTERM) finishes the current file and returns."""

    def __init__(self, config: WatchConfig, log: EventLog | None = None, notifier: Notifier | None = None) -> None:
        if config.model is None:
            from dataclasses import replace

            from trt_mass.bundled import default_model

            config = replace(config, model=default_model())
        self.config = config
        self.log = log or EventLog(config.log_format)
        self.notifier = notifier or Notifier()
        self.folders = {name: config.folder(name) for name in FOLDERS}
        self.counters = Counters()
        self._stop = threading.Event()
        self._queue: queue.Queue[Decoded] = queue.Queue(maxsize=config.queue_size)
        self._detector: Any = None
        self._model_hash: str | None = None
        self._last_watchdog = 0.0
        self._last_status = 0.0
        self.discovery = Discovery(self.folders["incoming"], config.polling, config.stable_polls,
                                   config.settle_s, config.rescan_s)

    # ----------------------------------------------------------------------------- lifecycle
    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        self._prepare_folders()
        self._recover()
        self.discovery.start()
        reader = threading.Thread(target=self._reader, name="trtmass-reader", daemon=True)
        try:
            self._load_model_with_retry(first=True)
            if self._stop.is_set():
                return 0
            reader.start()
            self._main_loop()
        finally:
            self._stop.set()
            if reader.is_alive():
                reader.join(timeout=30)
            self._requeue_undone()
            self.discovery.stop()
            self._close_model()
            self._write_status("stopped")
            self.notifier.stopping()
            self.log.event("stopped", processed=self.counters.processed, failed=self.counters.failed)
        return 0

    def _prepare_folders(self) -> None:
        root = self.config.root
        root.mkdir(parents=True, exist_ok=True)
        device = root.stat().st_dev
        for name, folder in self.folders.items():
            folder.mkdir(parents=True, exist_ok=True)
            if folder.stat().st_dev != device:
                raise ConfigError(f"{name}/ ({folder}) is on another filesystem than {root}: moves must be renames")

    def _recover(self) -> None:
        """Inputs a crash left in processing/ go back to the queue; stray temporary files go."""
        for path in sorted(self.folders["processing"].iterdir()):
            target = unique_target(self.folders["incoming"], path.name)
            os.replace(path, target)
            self.log.event("recovered", file=path.name)
        for folder in (self.folders["results"], self.folders["failed"], self.config.status_path.parent):
            for temporary in folder.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- model
    def _load_model_with_retry(self, first: bool = False) -> None:
        from trt_mass.pipeline import Detector

        delay = self.config.retry_initial_s
        while not self._stop.is_set():
            try:
                detector = Detector(self.config.model, backend=self.config.backend,  # type: ignore[arg-type]
                                    threads=self.config.threads, model_dir=self.config.model_dir,
                                    allow_engine_host_code=self.config.allow_engine_host_code).open()
            except Exception as error:  # a failing model is retried, never fatal
                self._report_failure("model_unavailable", error, delay)
                if first:
                    self.notifier.ready(f"model failing: {error}")
                    first = False
                self._sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            self._detector = detector
            self._model_hash = detector.metadata.weights_sha256
            self.log.event("model_loaded", model=str(self.config.model), model_id=detector.metadata.model_id,
                           backend=detector.runner.backend, backend_reason=detector.backend_reason,
                           precision=detector.metadata.precision)
            status = f"watching {self.folders['incoming']} with {detector.metadata.model_id}"
            self.notifier.ready(status) if first else self.notifier.status(status)
            self._write_status("running")
            return

    def _close_model(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _report_failure(self, kind: str, error: BaseException, retry_in: float) -> None:
        self.counters.retries += 1
        self.counters.last_error = f"{kind}: {error}"
        self.log.event(kind, error=str(error), retry_in_s=round(retry_in, 1))
        self.notifier.status(f"{kind}: {error}; retrying in {retry_in:.0f} s")
        self._write_status("retrying")

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._tick()
            self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    # ----------------------------------------------------------------------------- reader thread
    def _reader(self) -> None:
        from trt_mass.inputs.files import read_image

        interval = min(self.config.poll_interval_s, self.config.settle_s) if not self.config.polling \
            else self.config.poll_interval_s
        while not self._stop.is_set():
            ready = self.discovery.ready()
            if not ready:
                self._stop.wait(interval)
                continue
            for name in ready:
                if self._stop.is_set():
                    return
                claimed = self._claim(name)
                if claimed is None:
                    continue
                started = time.perf_counter()
                try:
                    item = Decoded(claimed, read_image(claimed), None, 0.0)
                except InputError as error:
                    item = Decoded(claimed, None, error, 0.0)
                item.read_ms = 1000 * (time.perf_counter() - started)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.2)  # bounded: the reader waits for the engine
                        break
                    except queue.Full:
                        continue
                else:
                    self._unclaim(claimed)
                    return

    def _claim(self, name: str) -> Path | None:
        source = self.folders["incoming"] / name
        target = unique_target(self.folders["processing"], name)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            self.discovery.forget(name)
            return None
        self.discovery.forget(name)
        return target

    def _unclaim(self, path: Path) -> None:
        if path.exists():
            os.replace(path, unique_target(self.folders["incoming"], path.name))

    def _requeue_undone(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._unclaim(item.path)
        for path in self.folders["processing"].iterdir():
            self._unclaim(path)

    # ----------------------------------------------------------------------------- main thread
    def _main_loop(self) -> None:
        while not self._stop.is_set():
            self._tick()
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._process(item)

    def _tick(self) -> None:
        now = time.monotonic()
        interval = self.notifier.watchdog_interval_s
        if interval is not None and now - self._last_watchdog >= interval:
            self.notifier.watchdog()
            self._last_watchdog = now
        if now - self._last_status >= self.config.status_interval_s:
            self._write_status("running" if self._detector is not None else "retrying")

    def _process(self, item: Decoded) -> None:
        if item.error is not None or item.mammogram is None:
            self._fail(item.path, item.error or InputError(item.path.name, "unreadable"))
            return
        mammogram = item.mammogram
        result_path = self.folders["results"] / f"{mammogram.sop_instance_uid or item.path.stem}.json"
        if self._same_model_result_exists(result_path):
            self.counters.duplicates += 1
            self.log.event("duplicate", file=item.path.name, sop_instance_uid=mammogram.sop_instance_uid)
            self._finish(item.path)
            return
        record = self._detect_with_retry(item)
        if record is None:  # stopping while the model failed: the input goes back to the queue
            self._unclaim(item.path)
            return
        outcome = self._write_with_retry(result_path, record, item)
        if outcome == "failed":
            return
        if outcome == "stopped":
            self._unclaim(item.path)
            return
        self._finish(item.path)
        self.counters.processed += 1
        self.log.event("processed", file=item.path.name, sop_instance_uid=mammogram.sop_instance_uid,
                       findings=len(record["findings"]), ms=record["timings_ms"])
        self._write_status("running")

    def _same_model_result_exists(self, result_path: Path) -> bool:
        try:
            existing = json.loads(result_path.read_text())
        except (OSError, ValueError):
            return False
        return bool(existing.get("model", {}).get("weights_sha256") == self._model_hash)

    def _detect_with_retry(self, item: Decoded) -> dict[str, Any] | None:
        from trt_mass.detect import result_record

        assert item.mammogram is not None
        mammogram = item.mammogram
        delay = self.config.retry_initial_s
        while not self._stop.is_set():
            if self._detector is None:
                self._load_model_with_retry()
                continue
            try:
                result = self._detector.detect(mammogram.pixels, pixel_spacing_mm=mammogram.pixel_spacing_mm,
                                               source=item.path.name)
            except InputError as error:
                self._fail(item.path, error)
                return None
            except Exception as error:  # engine failure (out of memory, mismatch): retry, keep the input
                self._report_failure("inference_failed", error, delay)
                self._close_model()
                self._sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            timings = {"read_decode_ms": item.read_ms, **result.timings_ms}
            return result_record(mammogram, result, self._detector, timings, mammogram.pixel_spacing_mm)
        return None

    def _write_with_retry(self, result_path: Path, record: dict[str, Any], item: Decoded) -> str:
        """"written", "failed" (the input went to failed/) or "stopped" (stop requested while failing)."""
        delay = self.config.retry_initial_s
        while not self._stop.is_set():
            try:
                if self.config.overlay and item.mammogram is not None:
                    from trt_mass.geometry import Finding
                    from trt_mass.outputs.overlay import render_overlay, write_overlay

                    findings = [Finding(**dict(f)) for f in record["findings"]]
                    write_overlay(result_path.with_suffix(".overlay.png"),
                                  render_overlay(item.mammogram.pixels, findings))
                if self.config.dicom_kinds and item.mammogram is not None:
                    from trt_mass.detect import dicom_outputs
                    from trt_mass.geometry import Finding

                    findings = [Finding(**dict(f)) for f in record["findings"]]
                    record["dicom_outputs"] = dicom_outputs(item.path, item.mammogram, findings,
                                                            self._detector.metadata, self.folders["results"],
                                                            self.config.dicom_kinds)
                write_json(result_path, record)  # last: its presence marks the whole result as written
                return "written"
            except InputError as error:  # the source header cannot be referenced by DICOM outputs
                self._fail(item.path, error)
                return "failed"
            except OSError as error:  # disk full, folder gone or read-only: keep the input, retry
                self._report_failure("results_not_writable", error, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
        return "stopped"

    def _finish(self, path: Path) -> None:
        if self.config.delete_done:
            path.unlink(missing_ok=True)
        else:
            os.replace(path, unique_target(self.folders["done"], path.name))

    def _fail(self, path: Path, error: InputError) -> None:
        failed = self.folders["failed"]
        target = unique_target(failed, path.name)
        report = {"file": path.name, "reason": error.reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "model": str(self.config.model), "model_sha256": self._model_hash}
        write_json(failed / f"{target.name}.error.json", report)
        os.replace(path, target)
        self.counters.failed += 1
        self.counters.last_error = f"{path.name}: {error.reason}"
        self.log.event("failed", file=path.name, reason=error.reason)
        self._write_status("running")

    # ----------------------------------------------------------------------------- status
    def _write_status(self, state: str) -> None:
        self._last_status = time.monotonic()
        metadata = self._detector.metadata if self._detector is not None else None
        status = {
            "state": state,
            "pid": os.getpid(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "started": self.counters.started,
            "processed": self.counters.processed,
            "failed": self.counters.failed,
            "duplicates": self.counters.duplicates,
            "retries": self.counters.retries,
            "queue_depth": self.discovery.pending_count() + self._queue.qsize(),
            "last_error": self.counters.last_error,
            "model": str(self.config.model),
            "model_id": metadata.model_id if metadata else None,
            "backend": self._detector.runner.backend if self._detector is not None else self.config.backend,
            "mode": "polling" if self.config.polling else "inotify",
        }
        # The status file is informative; its failure must not stop processing.
        with contextlib.suppress(OSError):
            write_atomic(self.config.status_path, (json.dumps(status, indent=2) + "\n").encode())
