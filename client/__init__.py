"""tlog client: the protocol core (pure codecs and Merkle math) and the verifying library.

The log server (`tlog/`) and the witness (`witness/`) import this package; it never imports
them, so the server can never use a more lenient parser or verifier than its users.
"""
