"""Sending DICOM files to one destination: C-STORE over one association, or DICOMweb STOW-RS.

Used by the outbox (trt_mass.dicomnet.outbox) and by `trtmass send`.  A file counts as delivered only
when the peer answered Success or a warning (PS3.4 B.2.3), or Duplicate SOP Instance (it already has
it: the UIDs of our results are deterministic, so a resend replaces, never duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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


OutcomeFn = Callable[[Outcome], None]


def send_files(paths: Sequence[Path], destination: Destination, settings: SendSettings | None = None,
               on_outcome: OutcomeFn | None = None) -> list[Outcome]:
    """Send `paths` to `destination`; one Outcome per file.

    `on_outcome` is called with each file's outcome as soon as the peer answered (the outbox lets an
    accepted file go at once, not after the whole batch).

    Raises DeliveryError when the peer cannot be reached, does not answer in time or refuses the
    association (files already answered keep their outcomes), InputError for a file that is not DICOM,
    BackendUnavailableError when the client library is missing.
    """
    settings = settings or SendSettings()
    report = on_outcome or (lambda outcome: None)
    if destination.is_dicomweb:
        return _stow(paths, destination, settings, report)
    return _c_store(paths, destination, settings, report)


def _header(path: Path) -> tuple[str, str]:
    """(SOP Class UID, Transfer Syntax UID) of a DICOM file."""
    import pydicom

    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(dataset.SOPClassUID), str(dataset.file_meta.TransferSyntaxUID)
    except Exception as error:
        raise InputError(str(path), f"not a DICOM file that can be sent ({error})") from error


def _c_store(paths: Sequence[Path], destination: Destination, settings: SendSettings,
             report: OutcomeFn) -> list[Outcome]:
    try:
        from pynetdicom import AE
    except ImportError as error:
        raise BackendUnavailableError("sending DICOM needs pynetdicom (pip install pynetdicom)") from error
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    gone = [Outcome(path, False, "not sent: the file is gone") for path in paths if not path.exists()]
    for outcome in gone:  # removed since it was listed (an operator clearing the outbox)
        report(outcome)
    paths = [path for path in paths if path.exists()]
    if not paths:
        return gone
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
        return gone + _not_associated(assoc, paths, destination, settings, report)
    outcomes: list[Outcome] = []
    try:
        for path in paths:
            outcomes.append(_store_one(assoc, path, destination))
            report(outcomes[-1])
            if not assoc.is_established:  # aborted by the peer: the rest waits for the next try
                outcomes += [Outcome(p, False, "association lost") for p in paths[len(outcomes):]]
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return gone + outcomes


def _not_associated(assoc: Any, paths: Sequence[Path], destination: Destination, settings: SendSettings,
                    report: OutcomeFn) -> list[Outcome]:
    """The peer answered but takes none of the files' SOP classes and transfer syntaxes: each file is
    refused (the peer is up; retrying will not help until it is configured). Otherwise DeliveryError."""
    if assoc.is_aborted and assoc.rejected_contexts and not assoc.accepted_contexts:
        outcomes = [Outcome(path, False, f"refused: {destination.ae_title} accepts none of the SOP classes and "
                            "transfer syntaxes offered for it (configure the peer to store them)") for path in paths]
        for outcome in outcomes:
            report(outcome)
        return outcomes
    if assoc.is_rejected:
        reason = (f"the association was rejected (check that the peer knows the calling AE title "
                  f"{settings.calling_ae!r} and this host, and that {destination.ae_title!r} is its AE title)")
    else:
        reason = "could not associate (the peer is down, refused the connection, or did not answer)"
    raise DeliveryError(f"{destination.spec}: {reason}")


def _store_one(assoc: Any, path: Path, destination: Destination) -> Outcome:
    try:
        status = assoc.send_c_store(path)
    except (ValueError, RuntimeError) as error:  # no accepted context for its class / syntax
        return Outcome(path, False, f"not sent: {error}")
    except OSError as error:  # removed or unreadable since it was listed
        return Outcome(path, False, f"not sent: {error.strerror or error}")
    if not status or "Status" not in status:
        return Outcome(path, False, "no response (timeout or association aborted)")
    code = int(status.Status)
    text = f"0x{code:04X}"
    if code in ACCEPTED_STATUSES:
        return Outcome(path, True, text)
    comment = status.get("ErrorComment")
    return Outcome(path, False, f"{text}{f' ({comment})' if comment else ''} from {destination.ae_title}")


def _stow(paths: Sequence[Path], destination: Destination, settings: SendSettings,
          report: OutcomeFn) -> list[Outcome]:
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
    client = DICOMwebClient(destination.url, session=session, timeout=settings.timeout_s)
    # Its own retries (5, on any exception, with waits) held a silent server's file for minutes and
    # ignored --timeout; the outbox retries with its backoff, `send` reports at once
    client.set_http_retry_params(retry=False)
    outcomes = []
    for path in paths:  # one request per file: a refused file does not hold back the others
        try:
            dataset = pydicom.dcmread(path)
        except OSError as error:  # removed or unreadable since it was listed
            outcomes.append(Outcome(path, False, f"not sent: {error.strerror or error}"))
            report(outcomes[-1])
            continue
        try:
            client.store_instances([dataset])
        except requests.exceptions.Timeout as error:
            raise DeliveryError(f"{destination.spec}: no answer within {settings.timeout_s:g} s ({error})") from error
        except requests.exceptions.ConnectionError as error:
            raise DeliveryError(f"{destination.spec}: {error}") from error
        except (requests.exceptions.RequestException, ValueError) as error:
            outcomes.append(Outcome(path, False, f"STOW-RS refused: {error}"))
        else:
            outcomes.append(Outcome(path, True, "stored"))
        report(outcomes[-1])
    return outcomes
