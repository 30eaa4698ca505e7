"""Layer 1, pure numpy: split axes, the copy modes (the only home of the import rules) and the import report."""
