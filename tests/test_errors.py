"""One exception tree: every error trt_mass raises on purpose carries its exit code."""

from __future__ import annotations

from trt_mass.errors import (
    AccuracyRegressionError,
    BackendUnavailableError,
    ConfigError,
    DeliveryError,
    InferenceServerError,
    InputError,
    ModelError,
    TrtMassError,
)


def test_exit_codes_are_those_the_readme_lists() -> None:
    codes = {error: error.exit_code for error in (ConfigError, InputError, ModelError, BackendUnavailableError,
                                                  AccuracyRegressionError, DeliveryError, InferenceServerError)}
    assert codes == {ConfigError: 2, InputError: 3, ModelError: 4, BackendUnavailableError: 5,
                     AccuracyRegressionError: 6, DeliveryError: 7, InferenceServerError: 8}
    assert all(issubclass(error, TrtMassError) for error in codes)


def test_input_errors_name_the_file_and_the_reason() -> None:
    error = InputError("scans/a.dcm", "not a mammogram (modality CT)")
    assert str(error) == "scans/a.dcm: not a mammogram (modality CT)"
    assert (error.source, error.reason) == ("scans/a.dcm", "not a mammogram (modality CT)")
