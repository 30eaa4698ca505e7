"""Layer 0: helpers every layer may use (quiet TensorFlow import, strict JSON, aligned buffers, file access,
the private Keras internals `transition` relies on)."""
