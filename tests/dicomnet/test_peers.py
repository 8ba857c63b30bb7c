"""Spellings of listeners, destinations and callers, and the config keys of the DICOM node."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_mass.daemon.config import load_config
from trt_mass.dicomnet.peers import Caller, Destination, ListenSpec, split_list
from trt_mass.errors import ConfigError


def test_listen_spec() -> None:
    assert ListenSpec.parse("11112") == ListenSpec("TRTMASS", 11112)
    assert ListenSpec.parse("CAD_NODE@104") == ListenSpec("CAD_NODE", 104)
    for bad in ("TRTMASS@", "0", "70000", "A_TITLE_LONGER_THAN_16@104", "x\\y@104"):
        with pytest.raises(ConfigError):
            ListenSpec.parse(bad)


def test_destination_spec() -> None:
    pacs = Destination.parse("PACS@10.0.0.5:104")
    assert (pacs.ae_title, pacs.host, pacs.port, pacs.tls, pacs.is_dicomweb) == ("PACS", "10.0.0.5", 104, False, False)
    secure = Destination.parse("tls:PACS@[::1]:2762")
    assert (secure.host, secure.port, secure.tls) == ("::1", 2762, True)
    web = Destination.parse("https://pacs.example/dicom-web/")
    assert web.is_dicomweb and web.url == "https://pacs.example/dicom-web"
    assert pacs.folder_name == "PACS_10.0.0.5_104" and "/" not in web.folder_name
    for bad in ("PACS", "PACS@host", "@host:104", "PACS@host:port"):
        with pytest.raises(ConfigError, match="destination"):
            Destination.parse(bad)


def test_callers_bind_addresses() -> None:
    anywhere, pinned = Caller.parse("MODALITY1"), Caller.parse("ROUTER@10.1.1.7")
    assert anywhere.admits("MODALITY1", "192.168.0.3") and not anywhere.admits("MODALITY2", "192.168.0.3")
    assert pinned.admits("ROUTER", "10.1.1.7") and not pinned.admits("ROUTER", "10.1.1.8")
    assert split_list("A, B@1.2.3.4,C\nD") == ["A", "B@1.2.3.4", "C", "D"]
    assert split_list("MG ROOM1, MAIN PACS@10.0.0.5:104") == ["MG ROOM1", "MAIN PACS@10.0.0.5:104"]  # not 4 titles
    assert Caller.parse("MG ROOM1").admits("MG ROOM1", "10.0.0.1")
    assert Caller.parse("ROUTER@::1").address == "::1"
    for bad in ("ROUTER@localhost", "ROUTER@10.0.4.7:104", "A B@1.2.3.4 C"):  # would never match: refused
        with pytest.raises(ConfigError, match="is not an IP address"):
            Caller.parse(bad)


def test_config_keys_from_toml_lists_and_environment(tmp_path: Path) -> None:
    toml = tmp_path / "watch.toml"
    toml.write_text('[watch]\nroot = "/srv/trtmass"\nlisten = "CAD@11112"\n'
                    'allowed_callers = ["MG1", "ROUTER@10.0.0.9"]\n'
                    'destinations = ["PACS@10.0.0.5:104", "https://pacs/dicom-web"]\n')
    config = load_config({}, toml, environ={"TRTMASS_WATCH_CALLING_AE": "CAD_OUT"})
    assert config.listen_spec == ListenSpec("CAD", 11112)
    assert [c.ae_title for c in config.callers] == ["MG1", "ROUTER"]
    assert [d.spec for d in config.destination_list] == ["PACS@10.0.0.5:104", "https://pacs/dicom-web"]
    assert config.calling_ae == "CAD_OUT"


@pytest.mark.parametrize(("flags", "message"), [
    ({"listen": "CAD@0"}, "port"),
    ({"tls_cert": "/x.pem"}, "tls_cert and tls_key"),
    ({"tls_ca": "/ca.pem"}, "tls_ca"),
    ({"destinations": "PACS@h:104", "dicom_out": "none"}, "nothing to deliver"),
    ({"calling_ae": "A" * 17}, "AE title"),
])
def test_bad_network_settings_are_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"root": "/srv/trtmass", **flags}, environ={})
