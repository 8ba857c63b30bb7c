"""Sending DICOM files to one destination: C-STORE over one association, or DICOMweb STOW-RS.

Used by the outbox (trt_mass.dicomnet.outbox) and by `trtmass send`.  A file counts as delivered only
when the peer answered Success or a warning (PS3.4 B.2.3), or Duplicate SOP Instance (it already has
it: the UIDs of our results are deterministic, so a resend replaces, never duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trt_mass.dicomnet.peers import DEFAULT_AE_TITLE, Destination, TlsFiles
from trt_mass.errors import BackendUnavailableError, DeliveryError, InputError

ACCEPTED_STATUSES = {0x0000, 0xB000, 0xB006, 0xB007, 0x0111}  # success, warnings, duplicate SOP instance


@dataclass(frozen=True)
class Outcome:
    """What the destination said about one file."""

    path: Path
    delivered: bool
    status: str  # "0x0000", or the reason it was not delivered

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "delivered": self.delivered, "status": self.status}


@dataclass(frozen=True)
class SendSettings:
    calling_ae: str = DEFAULT_AE_TITLE
    tls: TlsFiles = field(default_factory=TlsFiles)
    timeout_s: float = 30.0
    max_pdu: int = 262144


def send_files(paths: Sequence[Path], destination: Destination,
               settings: SendSettings | None = None) -> list[Outcome]:
    """Send `paths` to `destination`; one Outcome per file.

    Raises DeliveryError when the peer cannot be reached or refuses the association (then no file was
    delivered), InputError for a file that is not DICOM, BackendUnavailableError when the client library
    is missing.
    """
    settings = settings or SendSettings()
    if destination.is_dicomweb:
        return _stow(paths, destination, settings)
    return _c_store(paths, destination, settings)


def _header(path: Path) -> tuple[str, str]:
    """(SOP Class UID, Transfer Syntax UID) of a DICOM file."""
    import pydicom

    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(dataset.SOPClassUID), str(dataset.file_meta.TransferSyntaxUID)
    except Exception as error:
        raise InputError(str(path), f"not a DICOM file that can be sent ({error})") from error


def _c_store(paths: Sequence[Path], destination: Destination, settings: SendSettings) -> list[Outcome]:
    try:
        from pynetdicom import AE
    except ImportError as error:
        raise BackendUnavailableError("sending DICOM needs pynetdicom (pip install pynetdicom)") from error
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    headers = {path: _header(path) for path in paths}
    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.connection_timeout = settings.timeout_s
    ae.maximum_pdu_size = settings.max_pdu
    contexts = set(headers.values())
    # The file's own syntax, each in a context of its own (an acceptor picks one syntax per context); an
    # uncompressed file may also go as implicit VR, which every SCP takes.
    contexts |= {(sop_class, str(ImplicitVRLittleEndian)) for sop_class, syntax in headers.values()
                 if syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)}
    if len(contexts) > 128:
        raise DeliveryError(f"{destination.spec}: more than 128 (SOP class, transfer syntax) pairs in one batch")
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    tls_args = None
    if destination.tls:
        tls_args = (settings.tls.client_context(destination.host), destination.host)
    try:
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args)
    except OSError as error:
        raise DeliveryError(f"{destination.spec}: {error}") from error
    if not assoc.is_established:
        reason = "the association was rejected" if assoc.is_rejected else \
            "could not associate (the peer is down, refused the connection, or did not answer)"
        raise DeliveryError(f"{destination.spec}: {reason}")
    outcomes = []
    try:
        for path in paths:
            outcomes.append(_store_one(assoc, path, destination))
            if not assoc.is_established:  # aborted by the peer: the rest waits for the next try
                outcomes += [Outcome(p, False, "association lost") for p in paths[len(outcomes):]]
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


def _store_one(assoc: Any, path: Path, destination: Destination) -> Outcome:
    try:
        status = assoc.send_c_store(path)
    except (ValueError, RuntimeError) as error:  # no accepted context for its class / syntax
        return Outcome(path, False, f"not sent: {error}")
    if not status or "Status" not in status:
        return Outcome(path, False, "no response (timeout or association aborted)")
    code = int(status.Status)
    text = f"0x{code:04X}"
    if code in ACCEPTED_STATUSES:
        return Outcome(path, True, text)
    comment = status.get("ErrorComment")
    return Outcome(path, False, f"{text}{f' ({comment})' if comment else ''} from {destination.ae_title}")


def _stow(paths: Sequence[Path], destination: Destination, settings: SendSettings) -> list[Outcome]:
    try:
        import requests
        from dicomweb_client.api import DICOMwebClient
    except ImportError as error:
        raise BackendUnavailableError("STOW-RS needs dicomweb-client (pip install dicomweb-client)") from error
    import pydicom

    session = requests.Session()
    if settings.tls.cert is not None:
        session.cert = (str(settings.tls.cert), str(settings.tls.key)) if settings.tls.key else str(settings.tls.cert)
    if settings.tls.ca is not None:
        session.verify = str(settings.tls.ca)
    client = DICOMwebClient(destination.url, session=session)
    outcomes = []
    for path in paths:  # one request per file: a refused file does not hold back the others
        try:
            client.store_instances([pydicom.dcmread(path)])
        except requests.exceptions.ConnectionError as error:
            raise DeliveryError(f"{destination.spec}: {error}") from error
        except (requests.exceptions.RequestException, ValueError) as error:
            outcomes.append(Outcome(path, False, f"STOW-RS refused: {error}"))
            continue
        outcomes.append(Outcome(path, True, "stored"))
    return outcomes
