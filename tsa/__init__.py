"""tlog's RFC 3161 time-stamping authority: the time source Sigstore clients need for a Rekor
v2 style log, whose entries carry no integrated time of their own.

`tsa.authority` builds the tokens (pure), `tsa.keys` keeps the key and chain on disk,
`tsa.app` serves them over HTTP and `tsa.cli` runs it (`python -m tsa serve`). Clients verify
answers with `client.timestamp`.
"""
