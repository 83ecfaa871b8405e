"""The scaled-out shape of a log: tiles, bundles, envelopes and the checkpoint in an
S3-compatible bucket; what must be transactional (the tree head, leadership, the queue of
submissions, the dedup and search indexes) in PostgreSQL. docs/scale-out.md."""
