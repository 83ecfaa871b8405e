"""tlog witness: co-signs checkpoints it has checked for consistency (C2SP tlog-witness)."""
