"""The report's analyses of trained runs: class-weight norms, classifier biases, feature norm vs quality, 2-D features."""
