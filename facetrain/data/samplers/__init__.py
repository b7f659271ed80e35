"""Batch samplers: endless shuffled batches, identity-balanced P x K batches, each rank's share."""
