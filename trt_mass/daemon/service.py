"""The watch service: discovery in a reader thread, decoding (and, with 2 or more workers, the canvas and
the view choice) in a pool of decode workers, the engine, findings and writing in the main thread.

Every move is an os.replace inside one filesystem, every result is written atomically by the one
output step (trt_mass.outputs.results), so a crash at any moment leaves each input in exactly one
folder and no partial result.  On start, inputs left in processing/ go back to incoming/; results are
named by SOP Instance UID and carry the model hash, so reprocessing with the same model writes nothing
new (idempotent).  A failing model, detection or results folder is retried with backoff
(trt_mass.daemon.retry) while the input waits in processing/.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from trt_mass.atomic import fitting_name, move_without_replacing, numbered_names, write_json_atomic
from trt_mass.daemon.config import WatchConfig, default_canvas_in_workers
from trt_mass.daemon.discovery import Discovery
from trt_mass.daemon.events import Counters, EventLog, now_text
from trt_mass.daemon.retry import Backoff, retry
from trt_mass.daemon.sdnotify import Notifier
from trt_mass.dicomnet.outbox import Outbox
from trt_mass.dicomnet.peers import TlsFiles
from trt_mass.dicomnet.scp import ScpSettings, StorageSCP
from trt_mass.dicomnet.send import SendSettings
from trt_mass.errors import ConfigError, InputError
from trt_mass.inputs.decoders import PixelDecoder, decode_plan, open_decoder
from trt_mass.inputs.dicom import Mammogram
from trt_mass.outputs.operating_point import choose_operating_point
from trt_mass.outputs.results import OutputOptions, ResultWriter, WrittenResult, pixels_sha256, result_stem
from trt_mass.pipeline import CanvasPreparer, DetectionResult, Detector, PreparedCanvas

FOLDERS = ("incoming", "processing", "done", "results", "failed")
# Suffixes a reader goes by: a second "a.png" becomes "a.1.png", not "a.png.1" (which no reader takes).
KEPT_SUFFIXES = (".png", ".tif", ".tiff", ".dcm", ".dicom")
T = TypeVar("T")


@dataclass
class Decoded:
    path: Path  # in processing/
    mammogram: Mammogram | None
    error: InputError | None
    read_ms: float
    prepared: PreparedCanvas | None = None  # the canvas a decode worker made for the model then loaded


def unique_target(folder: Path, name: str) -> Path:
    """`folder/name`, or the first free `name.N` (before a reader's suffix: `a.N.png`)."""
    return next(target for target in numbered_names(folder, name, KEPT_SUFFIXES) if not target.exists())


def _failed_pair(failed: Path, name: str) -> tuple[Path, Path]:
    """The free name for a failed input and its report: neither may replace a file in failed/ (an input
    once named "x.png.error.json" is kept there under that name), and the report's name is kept short
    enough to write."""
    for target in numbered_names(failed, name, KEPT_SUFFIXES):
        report = failed / fitting_name(target.name, ".error.json")
        if not os.path.lexists(target) and not os.path.lexists(report):
            return target, report
    raise AssertionError("unreachable")


def hand_back(path: Path, incoming: Path) -> Path:
    """Move `path` back into incoming/ under a free name, never over a file a writer just dropped there."""
    return move_without_replacing(path, numbered_names(incoming, path.name, KEPT_SUFFIXES))


def _refuse_shared_folders(folders: dict[str, Path]) -> None:
    """Two roles in one folder lose files: processing/ = incoming/ deleted every input on recovery,
    done/ = incoming/ reprocessed them for ever, results/ = incoming/ took results as inputs."""
    seen: dict[tuple[int, int], str] = {}
    for name, folder in folders.items():
        stat = folder.stat()
        other = seen.setdefault((stat.st_dev, stat.st_ino), name)
        if other != name:
            raise ConfigError(f"{other}/ and {name}/ are one folder ({folder}): each needs its own")


PROBE_NAME = ".trtmass-probe"
# The renames an input makes: a bind mount shares st_dev but refuses them (EXDEV), which would hold
# every file up later.  results/ is written in place (its temporaries are made inside it).
INPUT_MOVES = (("incoming", "processing"), ("processing", "done"), ("processing", "failed"))


def _probe_renames(folders: dict[str, Path]) -> None:
    """Each move an input makes, tried at start with an empty dotfile (one a crash left is removed)."""
    for folder in folders.values():
        (folder / PROBE_NAME).unlink(missing_ok=True)
    probe = folders["incoming"] / PROBE_NAME
    probe.touch()
    try:
        for source, target in INPUT_MOVES:
            try:
                os.rename(probe, folders[target] / PROBE_NAME)
            except OSError as error:
                raise ConfigError(f"cannot move files from {source}/ into {target}/ ({folders[target]}): "
                                  f"{error}") from error
            probe = folders[target] / PROBE_NAME
            if target != "processing":
                os.rename(probe, folders["processing"] / PROBE_NAME)
                probe = folders["processing"] / PROBE_NAME
    finally:
        probe.unlink(missing_ok=True)


class WatchService:
    """Run with `run()`; `request_stop()` (SIGTERM) finishes the current file and returns."""

    def __init__(self, config: WatchConfig, log: EventLog | None = None, notifier: Notifier | None = None) -> None:
        if config.model is None:
            from trt_mass.bundled import default_model

            config = replace(config, model=default_model())
        self.config = config
        self.log = log or EventLog(config.log_format)
        self.notifier = notifier or Notifier()
        self.folders = {name: config.folder(name) for name in FOLDERS}
        self._processing_lock: int | None = None
        self._claim_failures: set[str] = set()
        self.counters = Counters()
        self._stop = threading.Event()
        self._queue: queue.Queue[Decoded] = queue.Queue(maxsize=config.queue_size)
        self.decode_workers, self.decode_threads = decode_plan(config.decode_workers, config.decode_threads)
        self._pixel_decoder: PixelDecoder | None = None
        self._detector: Detector | None = None
        self.canvas_in_workers = (config.canvas_in_workers if config.canvas_in_workers is not None
                                  else default_canvas_in_workers(self.decode_workers))
        self._preparer: CanvasPreparer | None = None  # the loaded model's, when canvas_in_workers
        self._prepare_failure_logged = False
        self._writer: ResultWriter | None = None
        self._model_hash: str | None = None
        self._ready_sent = False
        self._last_watchdog = 0.0
        self._last_status = 0.0
        self.discovery = Discovery(self.folders["incoming"], config.polling, config.stable_polls,
                                   config.settle_s, config.rescan_s, config.incomplete_grace_s)
        self._status_lock = threading.Lock()
        self.listener: StorageSCP | None = None
        self.outbox: Outbox | None = None
        if config.destination_list:
            self.outbox = Outbox(config.folder("outbox"), config.destination_list,
                                 SendSettings(config.calling_ae, TlsFiles(config.send_tls_cert, config.send_tls_key,
                                                                          config.send_tls_ca),
                                              timeout_s=config.network_timeout_s),
                                 self.log, config.retry_initial_s, config.retry_max_s, on_change=self._outbox_changed)

    # ----------------------------------------------------------------------------- lifecycle
    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        self._prepare_folders()
        self._recover()
        self.discovery.start()
        reader = threading.Thread(target=self._reader, name="trtmass-reader", daemon=True)
        try:
            self._start_network()
            self._open_decoder()
            self._load_model_with_retry()
            if self._stop.is_set():
                return 0
            reader.start()
            self._main_loop()
        finally:
            self._stop.set()
            if self.listener is not None:  # no acknowledgement after this point
                self.listener.stop()
            if reader.is_alive():
                reader.join(timeout=30)
            self._requeue_undone()
            self.discovery.stop()
            if self.outbox is not None:
                self.outbox.stop()
            self._close_model()
            self._write_status("stopped")
            self.notifier.stopping()
            self.log.event("stopped", processed=self.counters.processed, failed=self.counters.failed)
            if self._processing_lock is not None:
                os.close(self._processing_lock)
        return 0

    def _prepare_folders(self) -> None:
        root = self.config.root
        _make_folder("root", root)
        device = root.stat().st_dev
        for name, folder in self.folders.items():
            _make_folder(f"{name}/", folder)
            if folder.stat().st_dev != device:
                raise ConfigError(f"{name}/ ({folder}) is on another filesystem than {root}: moves must be renames")
        _refuse_shared_folders(self.folders)
        self._lock_processing(self.folders["processing"])
        _probe_renames(self.folders)
        status_folder = self.config.status_path.parent
        if not status_folder.is_dir():
            raise ConfigError(f"status_file {self.config.status_path}: its folder {status_folder} does not exist")

    def _lock_processing(self, processing: Path) -> None:
        """One daemon per processing/ folder: a second one recovered the first's files there as crash
        leftovers.  The lock is on the folder itself (no lock file to be taken for an input)."""
        import fcntl

        try:
            self._processing_lock = os.open(processing, os.O_RDONLY)
            fcntl.flock(self._processing_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise ConfigError(f"another trtmass watch uses {processing}: one daemon per processing/ "
                              "folder") from error
        except OSError as error:
            raise ConfigError(f"cannot lock {processing}: {error}") from error

    def _start_network(self) -> None:
        """The outbox's sender and the C-STORE listener, before the model: images are received (and
        results delivered) while a model loads or fails."""
        config = self.config
        if self.outbox is not None:
            self.outbox.start()
            self.log.event("outbox", destinations=[d.spec for d in self.outbox.destinations],
                           waiting=self.outbox.status()["depth"])
        listen = config.listen_spec
        if listen is None:
            return
        receiving = config.folder("receiving")
        receiving.mkdir(parents=True, exist_ok=True)
        if receiving.stat().st_dev != self.folders["incoming"].stat().st_dev:
            raise ConfigError(f"receiving/ ({receiving}) is on another filesystem than incoming/: "
                              "moves must be renames")
        if not config.callers:
            self.log.event("warning", message="the listener accepts any calling AE title: set allowed_callers")
        settings = ScpSettings(listen, config.listen_address, config.callers,
                               TlsFiles(config.tls_cert, config.tls_key, config.tls_ca), config.max_pdu,
                               config.max_associations, config.network_timeout_s)
        self.listener = StorageSCP(settings, self.folders["incoming"], receiving, self.log,
                                   on_stored=self.discovery.complete).start()

    def _outbox_changed(self) -> None:
        assert self.outbox is not None
        status = self.outbox.status()
        error = f"; last delivery error: {status['last_error']}" if status["last_error"] else ""
        self.notifier.status(f"outbox {status['depth']} waiting{error}")
        self._write_status("running" if self._detector is not None else "retrying")

    def _recover(self) -> None:
        """Inputs a crash left in processing/ go back to the queue; stray temporary files go."""
        for path in sorted(self.folders["processing"].iterdir()):
            target = hand_back(path, self.folders["incoming"])
            self.log.event("recovered", file=path.name, as_name=target.name)
        for folder in (self.folders["results"], self.folders["failed"], self.config.status_path.parent):
            for temporary in folder.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- retries
    def _retry(self, kind: str, attempt: Callable[[], T], *, retry_on: tuple[type[Exception], ...] = (Exception,),
               final: tuple[type[Exception], ...] = (InputError,),
               on_failure: Callable[[Exception], None] | None = None, file: str | None = None) -> T | None:
        """attempt() until it succeeds (None when stopping after a failure); each failure is reported as
        `kind`, with the input `file` it holds up."""
        def failed(error: Exception, delay: float) -> None:
            self._report_failure(kind, error, delay, file)
            if on_failure is not None:
                on_failure(error)

        return retry(attempt, backoff=Backoff(self.config.retry_initial_s, self.config.retry_max_s),
                     should_stop=self._stop.is_set, on_failure=failed, sleep=self._sleep, retry_on=retry_on,
                     final=final)

    def _report_failure(self, kind: str, error: BaseException, retry_in: float, file: str | None = None) -> None:
        self.counters.retries += 1
        self.counters.last_error = f"{kind}: {error}" if file is None else f"{kind} ({file}): {error}"
        self.log.event(kind, **({"file": file} if file is not None else {}), error=str(error),
                       retry_in_s=round(retry_in, 1))
        self.notifier.status(f"{kind}: {error}; retrying in {retry_in:.0f} s")
        self._write_status("retrying")

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._tick()
            self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def _open_decoder(self) -> None:
        """The pixel decoder, once: a decoder that was asked for by name and cannot run here is fatal."""
        decoder = open_decoder(self.config.decoder, self.decode_threads)
        self._pixel_decoder = decoder
        self.log.event("decoder", decoder=decoder.name, reason=decoder.reason, workers=self.decode_workers,
                       threads=decoder.threads)

    # ----------------------------------------------------------------------------- model
    def _load_model_with_retry(self) -> Detector | None:
        """The loaded model; a failing one is retried, never fatal (None: stopping)."""
        # Whatever loading the model raises is the model's problem, never the input's: always retried.
        return self._retry("model_unavailable", self._load_model, final=(), on_failure=self._model_failing)

    def _load_model(self) -> Detector:
        config = self.config
        assert config.model is not None
        # The decode workers share the cores: ONNX Runtime's idle threads must not spin on them.
        detector = Detector(config.model, backend=config.backend, threads=config.threads, model_dir=config.model_dir,
                            allow_engine_host_code=config.allow_engine_host_code, cpu_spin=False,
                            triton_url=config.triton_url, triton_model=config.triton_model,
                            triton_timeout_s=config.triton_timeout_s, all_views=config.all_views).open()
        try:
            point = choose_operating_point(detector.metadata, config.operating_point)
        except Exception:  # e.g. operating_point = "1fppi" for a model without points: retried, never leaked
            detector.close()
            raise
        self._detector = detector
        if self.canvas_in_workers:
            self._preparer = detector.preparer
        self._writer = ResultWriter(self.folders["results"], detector.metadata, detector.backend,
                                    OutputOptions(overlay=config.overlay, dicom_kinds=config.dicom_kinds,
                                                  operating_point=point),
                                    deliver=None if self.outbox is None else self.outbox.put)
        self._model_hash = detector.metadata.weights_sha256
        self.log.event("model_loaded", model=str(config.model), model_id=detector.metadata.model_id,
                       backend=detector.backend, backend_reason=detector.backend_reason,
                       precision=detector.metadata.precision, operating_point=point.to_dict(),
                       **({"warning": point.warning} if point.warning else {}))
        self._announce(f"watching {self.folders['incoming']} with {detector.metadata.model_id}")
        self._write_status("running")
        return detector

    def _model_failing(self, error: Exception) -> None:
        if not self._ready_sent:  # systemd waits for READY: the service is up, the model is what fails
            self._announce(f"model failing: {error}")

    def _announce(self, status: str) -> None:
        """READY=1 with the status the first time, STATUS= afterwards."""
        if self._ready_sent:
            self.notifier.status(status)
        else:
            self.notifier.ready(status)
            self._ready_sent = True

    def _close_model(self) -> None:
        self._preparer = None  # the next model may have another graph: no canvases for this one meanwhile
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    # ----------------------------------------------------------------------------- reader thread
    def _reader(self) -> None:
        """Claim ready files and hand each to a decode worker; at most `decode_workers` decode at once, so
        with the bounded queue and the file on the engine no more than workers + queue_size + 1 files are
        in processing/."""
        interval = min(self.config.poll_interval_s, self.config.settle_s) if not self.config.polling \
            else self.config.poll_interval_s
        free_workers = threading.Semaphore(self.decode_workers)
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="trtmass-decode") as pool:
            while not self._stop.is_set():
                try:
                    submitted = self._claim_ready(pool, free_workers)
                except Exception as error:  # the reader must outlive any one failure: it alone takes files
                    self._report_failure("reader_failed", error, interval)
                    submitted = 0
                if submitted is None:
                    return
                if not submitted:  # nothing ready, or only names that must wait: no busy loop
                    self.discovery.wait(interval)

    def _claim_ready(self, pool: ThreadPoolExecutor, free_workers: threading.Semaphore) -> int | None:
        """Claim what is ready and hand it to the decode workers; how many (None: stopping)."""
        submitted = 0
        for name in self.discovery.ready():
            if not self._wait_for(free_workers):
                return None
            claimed = self._claim(name)
            if claimed is None:
                free_workers.release()
                continue
            pool.submit(self._decode_and_enqueue, claimed, free_workers)
            submitted += 1
        return submitted

    def _wait_for(self, free_workers: threading.Semaphore) -> bool:
        """A free decode worker (False: stopping)."""
        while not self._stop.is_set():
            if free_workers.acquire(timeout=0.2):
                return True
        return False

    def _decode_and_enqueue(self, claimed: Path, free_workers: threading.Semaphore) -> None:
        from trt_mass.inputs.files import read_image

        try:
            started = time.perf_counter()
            try:
                item = Decoded(claimed, read_image(claimed, self.config.raster_bits, self._decoder()), None, 0.0)
            except InputError as error:
                item = Decoded(claimed, None, error, 0.0)
            except Exception as error:  # a bug in a reader must not leave the file stranded in processing/
                item = Decoded(claimed, None, InputError(claimed.name, f"could not be read ({type(error).__name__}: "
                                                                        f"{error})"), 0.0)
            item.read_ms = 1000 * (time.perf_counter() - started)
            self._prepare(item)
            if not self._enqueue(item):
                self._unclaim(claimed)
        finally:
            free_workers.release()

    def _prepare(self, item: Decoded) -> None:
        """The canvas and views for the model loaded now, when the workers make them.  An image the canvas
        refuses fails here as it would on the engine thread; anything else leaves it to the engine thread."""
        preparer = self._preparer
        if preparer is None or item.mammogram is None:
            return
        try:
            item.prepared = preparer.prepare(item.mammogram.pixels, item.path.name)
        except InputError as error:
            item.mammogram, item.error = None, error
        except Exception as error:  # the engine thread makes the canvas again and meets the error there
            item.prepared = None
            if not self._prepare_failure_logged:  # once: a persistent bug would otherwise flood the log
                self._prepare_failure_logged = True
                self.log.event("canvas_in_worker_failed", file=item.path.name,
                               reason=f"{type(error).__name__}: {error}; the engine thread makes the canvases")

    def _decoder(self) -> PixelDecoder:
        if self._pixel_decoder is None:  # opened by _open_decoder before the reader starts
            raise RuntimeError("the pixel decoder is not open")
        return self._pixel_decoder

    def _enqueue(self, item: Decoded) -> bool:
        """Put `item` on the bounded queue (the reader waits for the engine); False when stopping."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _claim(self, name: str) -> Path | None:
        """Move `name` to processing/ (None: gone, or wait: a file of that name is still in processing/,
        and a renamed claim would file its result under "name.1")."""
        source = self.folders["incoming"] / name
        target = self.folders["processing"] / name
        if target.exists():
            return None
        try:
            os.replace(source, target)
        except FileNotFoundError:
            self.discovery.forget(name)
            return None
        except OSError as error:  # processing/ made read-only, a bind mount (EXDEV): the file stays, retried
            self.discovery.forget(name)
            if name not in self._claim_failures:  # once per file, not once per poll
                self._claim_failures.add(name)
                again_in = (self.config.poll_interval_s * self.config.stable_polls if self.config.polling
                            else self.config.rescan_s)  # forgotten: found again by the next poll or rescan
                self._report_failure("claim_failed", error, again_in, name)
            return None
        self._claim_failures.discard(name)
        self.discovery.forget(name)
        return target

    def _unclaim(self, path: Path) -> None:
        # A decode worker and the shutdown may both hand back the same file: whoever comes second finds none.
        with contextlib.suppress(FileNotFoundError):
            hand_back(path, self.folders["incoming"])

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
        try:
            stem, extra = self._result_name(item.path, mammogram)
            if stem is None:
                if self._finish(item.path):
                    self.counters.duplicates += 1
                    self.log.event("duplicate", file=item.path.name, sop_instance_uid=mammogram.sop_instance_uid)
                return
            assert self._writer is not None
            self._writer.check_source(item.path, mammogram)
            result = self._detect_with_retry(item, mammogram)
            written = None if result is None else self._write_with_retry(item, mammogram, result, stem, extra)
        except InputError as error:
            self._fail(item.path, error)
            return
        if result is None or written is None:  # stopping while the model or the disk failed: back to the queue
            self._unclaim(item.path)
            return
        if not self._finish(item.path):  # stopping while done/ could not be written: the result is there
            return
        self.counters.processed += 1
        self.log.event("processed", file=item.path.name, sop_instance_uid=mammogram.sop_instance_uid,
                       findings=written.findings, ms=written.record["timings_ms"],
                       canvas_in_worker=result.prepared_elsewhere)
        self._write_status("running")

    def _result_name(self, path: Path, mammogram: Mammogram) -> tuple[str | None, dict[str, str]]:
        """(the stem to write under, extra JSON fields); stem None: this model's result is already there.

        A SOP Instance UID names one image; a file name does not (a second "case1.png" may be another
        image), so those results carry the file's SHA-256.  UID-named results carry the decoded pixels'
        SHA-256 (a resend re-encoded by a PACS is the same image; a device that reuses a UID for other
        pixels is not).  A result of the same input and model makes the arrival a duplicate; a result of
        another input under the name (a raster named like a UID, another case1.png, a reused UID) leaves it
        for the next free "case1-2".  Results written before these hashes existed are taken to be the same
        input (reprocessing stays idempotent across the upgrade).
        """
        from trt_mass.metadata import file_sha256

        stem = result_stem(mammogram, path)
        named_by_uid = stem == mammogram.sop_instance_uid
        try:
            digest = pixels_sha256(mammogram.pixels) if named_by_uid else file_sha256(path)
        except OSError as error:
            raise InputError(path.name, f"could not be read again to identify it ({error})") from error
        digest_key = "pixels_sha256" if named_by_uid else "input_sha256"
        extra = {digest_key: digest}

        def same_input(record: dict[str, Any]) -> bool:
            if named_by_uid and record.get("image", {}).get("sop_instance_uid") != stem:
                return False
            return bool(record.get(digest_key, digest) == digest)

        candidate, number = stem, 2
        while (existing := self._existing_result(candidate)) is not None:
            if same_input(existing):
                return (None if self._same_model(existing) else candidate), extra
            candidate, number = f"{stem}-{number}", number + 1
        if named_by_uid and candidate != stem:
            self.log.event("sop_instance_uid_reused", file=path.name, sop_instance_uid=stem, result=candidate,
                           reason="another image with other pixels has this SOP Instance UID; filed beside it")
        return candidate, extra

    def _existing_result(self, stem: str) -> dict[str, Any] | None:
        assert self._writer is not None
        try:
            existing = json.loads(self._writer.json_path(stem).read_text())
        except (OSError, ValueError):
            return None
        return existing if isinstance(existing, dict) else None

    def _same_model(self, record: dict[str, Any]) -> bool:
        return bool(record.get("model", {}).get("weights_sha256") == self._model_hash)

    def _detect_with_retry(self, item: Decoded, mammogram: Mammogram) -> DetectionResult | None:
        """The detection (None: stopping); InputError propagates, an engine failure reloads the model."""
        def attempt() -> DetectionResult | None:
            detector = self._detector or self._load_model_with_retry()
            if detector is None:
                return None
            try:
                return detector.detect_mammogram(mammogram, source=item.path.name, prepared=item.prepared)
            except InputError:
                raise
            except Exception:  # out of memory, a lost GPU: start again from a fresh model
                self._close_model()
                raise

        return self._retry("inference_failed", attempt, file=item.path.name)

    def _write_with_retry(self, item: Decoded, mammogram: Mammogram, result: DetectionResult,
                          stem: str, extra: dict[str, str]) -> WrittenResult | None:
        """The written result (None: stopping); a disk that is full, gone or read-only is retried."""
        writer = self._writer
        assert writer is not None
        timings = {"read_decode_ms": item.read_ms, **result.timings_ms}
        return self._retry("results_not_writable",
                           lambda: writer.write(item.path, mammogram, result, stem, timings, extra=extra),
                           retry_on=(OSError,), file=item.path.name)

    def _finish(self, path: Path) -> bool:
        """Move the input to done/ (or delete it), retried while that fails; False: stopping first (the
        input goes back to incoming/ at shutdown, and its result is then found as a duplicate)."""
        def attempt() -> bool:
            if self.config.delete_done:
                path.unlink(missing_ok=True)
            elif self._still_there(path):
                self.folders["done"].mkdir(parents=True, exist_ok=True)  # someone removed it: as on start
                os.replace(path, unique_target(self.folders["done"], path.name))
            return True

        return self._retry("done_not_writable", attempt, retry_on=(OSError,), file=path.name) is not None

    def _fail(self, path: Path, error: InputError) -> None:
        """Move the input to failed/ with its reason, retried while the disk refuses (it waits in processing/)."""
        failed = self.folders["failed"]

        def attempt() -> bool:
            if not self._still_there(path):
                return False
            failed.mkdir(parents=True, exist_ok=True)  # someone removed it: as on start
            target, report_path = _failed_pair(failed, path.name)
            report = {"file": path.name, "kept_as": target.name, "reason": error.reason, "time": now_text(),
                      "model": str(self.config.model), "model_sha256": self._model_hash}
            write_json_atomic(report_path, report)  # first: a failed input is never without its reason
            try:
                os.replace(path, target)
            except OSError:
                report_path.unlink(missing_ok=True)  # retried: the next attempt writes it again
                raise
            return True

        if not self._retry("failed_not_writable", attempt, retry_on=(OSError,), file=path.name):
            return  # stopping (it goes back to incoming/), or it vanished
        self.counters.failed += 1
        self.counters.last_error = f"{path.name}: {error.reason}"
        self.log.event("failed", file=path.name, reason=error.reason)
        self._write_status("running")

    def _still_there(self, path: Path) -> bool:
        """False (and logged) when the input left processing/ by someone else's hand: retrying its move
        could never succeed."""
        if path.exists() or path.is_symlink():
            return True
        self.log.event("vanished", file=path.name, reason="removed from processing/ by someone else")
        return False

    # ----------------------------------------------------------------------------- status
    def _write_status(self, state: str) -> None:
        self._last_status = time.monotonic()
        detector = self._detector
        status = {
            "state": state,
            "pid": os.getpid(),
            "updated": now_text(),
            "started": self.counters.started,
            "processed": self.counters.processed,
            "failed": self.counters.failed,
            "duplicates": self.counters.duplicates,
            "retries": self.counters.retries,
            "queue_depth": self.discovery.pending_count() + self._queue.qsize(),
            "last_error": self.counters.last_error,
            "model": str(self.config.model),
            "model_id": detector.metadata.model_id if detector is not None else None,
            "backend": detector.backend if detector is not None else self.config.backend,
            "operating_point": self._writer.options.operating_point.name if self._writer is not None else None,
            "mode": "polling" if self.config.polling else "inotify",
            "decoder": None if self._pixel_decoder is None else self._pixel_decoder.name,
            "decode_workers": self.decode_workers,
        }
        if self.listener is not None:
            status["listener"] = {"ae_title": self.listener.settings.listen.ae_title, "port": self.listener.port,
                                  "received": self.listener.received, "refused": self.listener.refused}
        if self.outbox is not None:
            status["outbox"] = self.outbox.status()
        # The status file is informative; its failure must not stop processing.  The outbox's thread
        # writes it too.
        with self._status_lock, contextlib.suppress(OSError):
            write_json_atomic(self.config.status_path, status)


def _make_folder(name: str, folder: Path) -> None:
    """mkdir -p, or a ConfigError naming the folder (a file in its place, no permission)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{name} ({folder}) cannot be made a folder: {error.strerror or error}") from error
