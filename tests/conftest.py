"""Shared test set-up: quiet TensorFlow, fresh Keras state per test."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
