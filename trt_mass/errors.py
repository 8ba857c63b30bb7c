"""The exceptions the library raises; the CLI maps each to an exit code."""

from __future__ import annotations


class TrtMassError(Exception):
    """Base of every error trt_mass raises on purpose."""

    exit_code = 1


class ConfigError(TrtMassError):
    """An option or a combination of options is invalid."""

    exit_code = 2


class InputError(TrtMassError):
    """An input file or array cannot be used; the message names it and the reason."""

    exit_code = 3

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ModelError(TrtMassError):
    """A model artifact is missing, malformed, or does not match what it is used with."""

    exit_code = 4


class BackendUnavailableError(TrtMassError):
    """The requested backend (e.g. TensorRT, torch) is not installed on this machine."""

    exit_code = 5


class AccuracyRegressionError(TrtMassError):
    """A variant under test loses more sensitivity than allowed (`trtmass compare`)."""

    exit_code = 6


class DeliveryError(TrtMassError):
    """A DICOM or DICOMweb destination could not be reached or refused the association; nothing was lost."""

    exit_code = 7


class InferenceServerError(TrtMassError):
    """An inference server (Triton) cannot be reached, timed out, or failed a request; the input is not at fault."""

    exit_code = 8
