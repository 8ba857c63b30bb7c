"""Addresses of DICOM peers and the TLS contexts of both sides.

Spellings (the same in flags, the TOML config and the environment):
    listen:       "[AE@]PORT"                 e.g. "TRTMASS@11112" or "11112"
    destination:  "[tls:]AE@HOST:PORT"        a DICOM peer (C-STORE), TLS when prefixed
                  "http(s)://HOST/.../dicom-web"  a DICOMweb STOW-RS service
    caller:       "AE" or "AE@ADDRESS"        an allowed calling AE title, optionally from one address only
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from trt_mass.errors import ConfigError

DEFAULT_AE_TITLE = "TRTMASS"
DEFAULT_PORT = 11112
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 characters, no backslash


def check_ae_title(title: str, what: str = "AE title") -> str:
    if not _AE_TITLE.match(title) or not title.strip():
        raise ConfigError(f"{what} {title!r} is not a DICOM AE title (1 to 16 characters, no backslash)")
    return title.strip()


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{spec}: port must be 1..65535, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class ListenSpec:
    """Our storage SCP: the AE title it answers to and its TCP port."""

    ae_title: str
    port: int

    @classmethod
    def parse(cls, spec: str) -> ListenSpec:
        ae_title, _, port = spec.rpartition("@")
        return cls(check_ae_title(ae_title or DEFAULT_AE_TITLE), _port(port.strip(), f"listen {spec!r}"))


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM peer (ae_title, host, port, tls) or a STOW-RS URL (url)."""

    spec: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    tls: bool = False
    url: str = ""

    @classmethod
    def parse(cls, spec: str) -> Destination:
        spec = spec.strip()
        if spec.startswith(("http://", "https://")):
            return cls(spec, url=spec.rstrip("/"))
        body = spec[len("tls:"):] if spec.startswith("tls:") else spec
        ae_title, at, address = body.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not host:
            raise ConfigError(f"destination {spec!r}: expected [tls:]AE@HOST:PORT or an http(s):// STOW-RS URL")
        return cls(spec, check_ae_title(ae_title, f"destination {spec!r}: AE title"), host.strip("[]"),
                   _port(port, f"destination {spec!r}"), spec.startswith("tls:"))

    @property
    def is_dicomweb(self) -> bool:
        return bool(self.url)

    @property
    def folder_name(self) -> str:
        """A file-system-safe, stable name for this destination's outbox folder."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.spec).strip("_") or "destination"


@dataclass(frozen=True)
class Caller:
    """An allowed calling AE title, optionally bound to one peer address."""

    ae_title: str
    address: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Caller:
        import ipaddress

        ae_title, _, address = spec.strip().partition("@")
        if address:
            try:  # compared with the peer's address as it is: a host name or a port would never match
                address = str(ipaddress.ip_address(address.strip()))
            except ValueError as error:
                raise ConfigError(f"allowed caller {spec.strip()!r}: {address.strip()!r} is not an IP address (give "
                                  "the caller's address, without a port; host names are not resolved)") from error
        return cls(check_ae_title(ae_title, "allowed caller"), address or None)

    def admits(self, ae_title: str, address: str) -> bool:
        return ae_title.strip() == self.ae_title and (self.address is None or self.address == address)


def split_list(text: str | None) -> list[str]:
    """Items of a comma-separated setting (commas or new lines; an AE title may hold a space)."""
    return [item.strip() for item in re.split(r"[,\n]+", text or "") if item.strip()]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one side: our certificate and key, and the CA that peers' certificates must chain to."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert is not None or self.ca is not None

    def server_context(self) -> ssl.SSLContext:
        """TLS for our SCP: our certificate; with a CA, callers must present a certificate it signed."""
        if self.cert is None or self.key is None:
            raise ConfigError("TLS for the listener needs tls_cert and tls_key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._load(context)
        if self.ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, host: str) -> ssl.SSLContext:
        """TLS towards a peer: its certificate must chain to our CA (default: the system's); ours if given."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._load(context)
        context.check_hostname = False  # DICOM peers are named by AE title and address, rarely by DNS name
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        try:
            if self.cert is not None:
                context.load_cert_chain(str(self.cert), None if self.key is None else str(self.key))
            if self.ca is not None:
                context.load_verify_locations(cafile=str(self.ca))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"TLS files ({self.cert}, {self.key}, {self.ca}) cannot be used: {error}") from error
