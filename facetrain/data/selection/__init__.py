"""Which images a training set keeps: identity subsets, evaluation-set exclusion, broken files."""
