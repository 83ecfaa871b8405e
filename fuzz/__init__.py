"""Coverage-guided fuzzing (atheris/libFuzzer) of every parser that reads untrusted bytes.

`fuzz.targets` is the registry of fuzz targets, `fuzz.fixtures` the fixed keys and trust
anchors the targets verify with, `fuzz.seeds` builds the seed corpus from real objects,
`fuzz.mutators` mutates JSON and line formats by their structure, and `python -m fuzz.run`
runs the fuzzer (docs/fuzzing.md).
"""
