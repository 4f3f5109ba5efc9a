"""Measuring identification: the leave-one-out and open-set protocols of
`../shared/data/README.md`, run through the same pipeline as the service. Not imported
by the service; `whaleid evaluate` and the scripts under `scripts/` use it."""
