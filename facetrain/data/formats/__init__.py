"""Training-set formats: identity folders, facetrain packs, insightface RecordIO, MNIST-style digits."""
