"""tlog log server: LMDB storage, sequencer, signers, HTTP app and the `tlog` CLI."""
