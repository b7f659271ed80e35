"""Distributed runs under torchrun: who this process is, the process group, the launcher, collectives."""
