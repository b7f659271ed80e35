"""Features for evaluation: the embedder, the features file, its cache, and the checks that refuse bad ones."""
