"""The storage SCP: mammograms arrive by C-STORE and land in incoming/ before they are acknowledged.

Each accepted instance is written to receiving/ (same filesystem), fsynced, moved to
incoming/<SOP Instance UID>.dcm (<uid>.N.dcm while an earlier arrival of the UID waits there; never
over it) and the folder fsynced, and only then answered with Success: an
acknowledged image survives a crash, an unacknowledged one is resent by the sender.  The folder
watcher takes it from there, so every guarantee of the folder path (idempotent by SOP Instance UID,
failed/ with reasons, retries) holds for network arrivals too.

Presentation contexts: the mammography For Presentation storage classes (and DX For Presentation,
which some units use for MG) in every transfer syntax the loader decodes, the For Processing classes
only to refuse each instance with a clear status, and Verification.  Anything else is refused at
association time.  Logs name AE titles, addresses and UIDs, never patient data.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_mass.atomic import move_without_replacing, numbered_names
from trt_mass.daemon.events import EventLog
from trt_mass.dicomnet.peers import Caller, ListenSpec, TlsFiles
from trt_mass.errors import BackendUnavailableError, ConfigError
from trt_mass.inputs.dicom import (
    BREAST_PROJECTION_FOR_PRESENTATION,
    BREAST_PROJECTION_FOR_PROCESSING,
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    MG_FOR_PRESENTATION,
    MG_FOR_PROCESSING,
)

VERIFICATION = "1.2.840.10008.1.1"
ACCEPTED_SOP_CLASSES = (MG_FOR_PRESENTATION, BREAST_PROJECTION_FOR_PRESENTATION, DX_FOR_PRESENTATION)
REFUSED_SOP_CLASSES = (MG_FOR_PROCESSING, BREAST_PROJECTION_FOR_PROCESSING, DX_FOR_PROCESSING)
# C-STORE statuses (PS3.4 B.2.3 and PS3.7 C)
SUCCESS = 0x0000
REFUSED_SOP_CLASS = 0x0122  # SOP Class not supported
REFUSED_OUT_OF_RESOURCES = 0xA700
ERROR_CANNOT_UNDERSTAND = 0xC000
# A-ASSOCIATE-RJ (PS3.8 9.3.4): rejected-permanent, by the service user
REJECT_PERMANENT, SOURCE_USER = 0x01, 0x01
CALLING_AE_NOT_RECOGNIZED, CALLED_AE_NOT_RECOGNIZED = 0x03, 0x07
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def decodable_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes the loader can decode here (uncompressed ones and those with a decoder plugin)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import (
        UID,
        AllTransferSyntaxes,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
    for uid in map(UID, AllTransferSyntaxes):
        if not uid.is_compressed or uid in syntaxes:
            continue
        try:
            if get_decoder(uid).is_available:
                syntaxes.append(uid)
        except (NotImplementedError, ImportError):
            continue
    return [str(uid) for uid in syntaxes]


@dataclass(frozen=True)
class ScpSettings:
    """Everything the listener needs; see WatchConfig for the meaning of each key."""

    listen: ListenSpec
    address: str = "0.0.0.0"
    allowed_callers: tuple[Caller, ...] = ()
    tls: TlsFiles = field(default_factory=TlsFiles)
    max_pdu: int = 262144
    max_associations: int = 8
    network_timeout_s: float = 60.0


class StorageSCP:
    """start() binds the port and serves in background threads; stop() closes it.

    `on_stored(name)` is called with the file name in incoming/ after each acknowledged instance.
    """

    def __init__(self, settings: ScpSettings, incoming: Path, receiving: Path, log: EventLog,
                 on_stored: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.incoming = incoming
        self.receiving = receiving
        self.log = log
        self.on_stored = on_stored
        self.received = 0
        self.refused = 0
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        if self._server is None:
            return self.settings.listen.port
        return int(self._server.server_address[1])

    def start(self) -> StorageSCP:
        try:
            from pynetdicom import AE, evt
        except ImportError as error:
            raise BackendUnavailableError("the DICOM listener needs pynetdicom (pip install pynetdicom)") from error
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO/DEBUG lines may show header values
        self.receiving.mkdir(parents=True, exist_ok=True)
        for stale in self.receiving.glob(".*.tmp"):  # never acknowledged: the sender resends them
            stale.unlink(missing_ok=True)
        settings = self.settings
        ae = AE(ae_title=settings.listen.ae_title)
        ae.require_called_aet = True
        ae.maximum_pdu_size = settings.max_pdu
        ae.maximum_associations = settings.max_associations
        ae.network_timeout = settings.network_timeout_s
        ae.acse_timeout = min(30.0, settings.network_timeout_s)
        ae.dimse_timeout = settings.network_timeout_s
        syntaxes = decodable_transfer_syntaxes()
        for sop_class in (*ACCEPTED_SOP_CLASSES, *REFUSED_SOP_CLASSES):
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(VERIFICATION)
        handlers: list[Any] = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected),
                    (evt.EVT_ACCEPTED, self._on_accepted)]
        ssl_context = settings.tls.server_context() if settings.tls.enabled else None
        try:
            self._server = ae.start_server((settings.address, settings.listen.port), block=False,
                                           evt_handlers=handlers, ssl_context=ssl_context)
        except OSError as error:
            raise ConfigError(f"cannot listen on {settings.address}:{settings.listen.port}: {error}") from error
        self.log.event("listening", ae_title=settings.listen.ae_title, address=settings.address, port=self.port,
                       tls=ssl_context is not None, transfer_syntaxes=len(syntaxes),
                       allowed_callers=[c.ae_title + (f"@{c.address}" if c.address else "")
                                        for c in settings.allowed_callers] or "any")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # ----------------------------------------------------------------------------- handlers
    def _on_requested(self, event: Any) -> None:
        """Refuse callers that are not on the allow-list (AE title, and address where one is given)."""
        requestor = event.assoc.requestor
        # The requestor's AE title is filled in only after negotiation: read it from the request itself.
        calling, address = str(requestor.primitive.calling_ae_title).strip(), str(requestor.address)
        callers = self.settings.allowed_callers
        if callers and not any(caller.admits(calling, address) for caller in callers):
            self.log.event("association_refused", calling_ae=calling, address=address,
                           reason="calling AE title not allowed from this address")
            event.assoc.acse.send_reject(REJECT_PERMANENT, SOURCE_USER, CALLING_AE_NOT_RECOGNIZED)
            event.assoc.kill()

    def _on_rejected(self, event: Any) -> None:
        """pynetdicom rejected the request itself (our allow-list refusals are logged by _on_requested)."""
        requestor = event.assoc.requestor
        called = str(requestor.primitive.called_ae_title).strip()  # what the caller asked for, not our title
        if called != self.settings.listen.ae_title:
            reason = f"called AE title is not {self.settings.listen.ae_title!r}"
        elif sum(a.is_acceptor for a in event.assoc.ae.active_associations) > self.settings.max_associations:
            reason = f"association limit ({self.settings.max_associations}) reached"
        else:
            reason = "user identity refused"
        self.log.event("association_rejected", calling_ae=str(requestor.primitive.calling_ae_title).strip(),
                       address=str(requestor.address), called_ae=called, reason=reason)

    def _on_accepted(self, event: Any) -> None:
        """Name what a sender cannot send us: its C-STOREs of those would fail on its side, unseen here."""
        assoc = event.assoc
        usable = {str(c.abstract_syntax) for c in assoc.accepted_contexts}  # a class is proposed once per syntax
        images_refused = sorted({str(c.abstract_syntax) for c in assoc.rejected_contexts
                                 if str(c.abstract_syntax) in ACCEPTED_SOP_CLASSES} - usable)
        if images_refused:
            reason = "none of the proposed transfer syntaxes of these mammogram classes is decodable here"
        elif not assoc.accepted_contexts and assoc.rejected_contexts:
            images_refused = sorted({str(c.abstract_syntax) for c in assoc.rejected_contexts})[:5]
            reason = "no proposed SOP class is a mammogram (FOR PRESENTATION) or verification"
        else:
            return
        requestor = assoc.requestor
        self.log.event("contexts_refused", calling_ae=str(requestor.ae_title).strip(),
                       address=str(requestor.address), sop_classes=images_refused, reason=reason)

    def _on_echo(self, event: Any) -> int:
        requestor = event.assoc.requestor
        self.log.event("echo", calling_ae=str(requestor.ae_title).strip(), address=str(requestor.address))
        return SUCCESS

    def _on_store(self, event: Any) -> Any:
        from pydicom import Dataset

        request, requestor = event.request, event.assoc.requestor
        sop_class, uid = str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID)
        who = {"calling_ae": str(requestor.ae_title).strip(), "address": str(requestor.address),
               "sop_instance_uid": uid}
        if sop_class in REFUSED_SOP_CLASSES:
            return self._refuse(REFUSED_SOP_CLASS, "a FOR PROCESSING image (raw detector data) is not read; "
                                                   "send the FOR PRESENTATION image", who)
        if not _UID.match(uid) or len(uid) > 64:
            return self._refuse(ERROR_CANNOT_UNDERSTAND, "the SOP Instance UID is not a valid UID", who)
        try:
            name = self._land(event.encoded_dataset(include_meta=True), uid)
        except OSError as error:  # disk full or gone: the sender keeps the image and retries
            return self._refuse(REFUSED_OUT_OF_RESOURCES, f"could not be stored ({error.strerror or error})", who)
        with self._lock:
            self.received += 1
        self.log.event("received", file=name, **who)
        if self.on_stored is not None:
            self.on_stored(name)
        status = Dataset()
        status.Status = SUCCESS
        return status

    def _land(self, encoded: bytes, uid: str) -> str:
        """Write, fsync, link into incoming/, fsync the folder: durable before the response goes out.

        Returns the name it landed under: `<uid>.dcm`, or `<uid>.N.dcm` while an earlier arrival of the UID
        still waits there (a resend, or a device reusing the UID for another image: the daemon tells them
        apart; replacing the waiting file would lose it unread).
        """
        temporary = self.receiving / f".{uid}.dcm.{threading.get_ident()}.tmp"
        try:
            with open(temporary, "wb") as stream:
                stream.write(encoded)
                stream.flush()
                os.fsync(stream.fileno())
            name = move_without_replacing(temporary, numbered_names(self.incoming, f"{uid}.dcm", (".dcm",))).name
        finally:
            temporary.unlink(missing_ok=True)
        folder = os.open(self.incoming, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return name

    def _refuse(self, code: int, reason: str, who: dict[str, str]) -> Any:
        from pydicom import Dataset

        with self._lock:
            self.refused += 1
        self.log.event("store_refused", status=f"0x{code:04X}", reason=reason, **who)
        status = Dataset()
        status.Status = code
        status.ErrorComment = reason[:64]
        return status
