"""Shared test set-up: quiet TensorFlow logs, Keras on the TensorFlow backend.

No per-test `keras.backend.clear_session()`: it costs about a second per test (a full gc), and the networks in the
tests name their layers explicitly.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
