// Command receiptcheck verifies a tlog receipt (the answer of POST /v1/entries, or of
// GET /v1/entries/<i>/receipt) offline, with Go's reference implementation of signed notes and
// Merkle proofs (golang.org/x/mod/sumdb/note and sumdb/tlog) and nothing else.
//
// It uses only the standard library and x/mod, and is built in GOPATH mode by tests/gobuild.py:
//
//	GO111MODULE=off GOPATH=<repo>/tests/go:/usr/share/gocode go build -o receiptcheck receiptcheck
//
// Usage:
//
//	receiptcheck -vkey VKEY RECEIPT.json
//
// Checks, in order: the checkpoint is a note signed by VKEY (note.Open); its origin is the
// receipt's origin and the key's name; its size and root parse strictly and the size is the
// proof's tree_size; tlog.RecordHash(leaf) is leaf_hash; tlog.CheckRecord accepts the proof of
// the leaf at index against the root. Exit status 0 if all hold, 1 if any does not (or the
// receipt cannot be read), 2 on a usage error.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type receipt struct {
	Origin         string      `json:"origin"`
	Index          json.Number `json:"index"`
	Leaf           string      `json:"leaf"`
	LeafHash       string      `json:"leaf_hash"`
	InclusionProof struct {
		TreeSize json.Number `json:"tree_size"`
		Hashes   []string    `json:"hashes"`
	} `json:"inclusion_proof"`
	Checkpoint string `json:"checkpoint"`
}

var strict = base64.StdEncoding.Strict()

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL  "+format+"\n", args...)
	os.Exit(1)
}

// decodeHash decodes standard base64 of exactly 32 bytes, canonically.
func decodeHash(what, s string) tlog.Hash {
	var h tlog.Hash
	raw, err := strict.DecodeString(s)
	if err != nil || len(raw) != tlog.HashSize || strict.EncodeToString(raw) != s {
		fail("%s %q is not standard base64 of 32 bytes", what, s)
	}
	copy(h[:], raw)
	return h
}

// canonicalInt parses a JSON number that must be a canonical non-negative integer.
func canonicalInt(what string, n json.Number) int64 {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v < 0 || strconv.FormatInt(v, 10) != string(n) {
		fail("%s %q is not a non-negative integer", what, n)
	}
	return v
}

// parseCheckpoint parses C2SP tlog-checkpoint text: origin, canonical decimal size, standard
// base64 of a 32-byte root, then optional non-empty extension lines.
func parseCheckpoint(text string) (string, int64, tlog.Hash) {
	if !strings.HasSuffix(text, "\n") {
		fail("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		fail("checkpoint text has no origin, size and root")
	}
	size := canonicalInt("checkpoint size", json.Number(lines[1]))
	root := decodeHash("checkpoint root", lines[2])
	for _, ext := range lines[3:] {
		if ext == "" {
			fail("checkpoint has an empty extension line")
		}
	}
	return lines[0], size, root
}

func main() {
	vkey := flag.String("vkey", "", "the log's verifier key (C2SP signed-note vkey)")
	flag.Parse()
	if *vkey == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: receiptcheck -vkey VKEY RECEIPT.json")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fmt.Fprintf(os.Stderr, "receiptcheck: bad -vkey: %v\n", err)
		os.Exit(2)
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail("reading the receipt: %v", err)
	}
	var r receipt
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		fail("receipt is not JSON: %v", err)
	}

	n, err := note.Open([]byte(r.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}
	fmt.Printf("ok    note.Open: checkpoint signed by %s\n", verifier.Name())
	origin, size, root := parseCheckpoint(n.Text)
	if origin != verifier.Name() || origin != r.Origin {
		fail("checkpoint origin %q, receipt origin %q, key name %q", origin, r.Origin, verifier.Name())
	}
	treeSize := canonicalInt("tree_size", r.InclusionProof.TreeSize)
	if treeSize != size {
		fail("proof is for tree size %d, the checkpoint has size %d", treeSize, size)
	}
	index := canonicalInt("index", r.Index)
	if index >= size {
		fail("index %d is not below the tree size %d", index, size)
	}

	leaf, err := strict.DecodeString(r.Leaf)
	if err != nil || strict.EncodeToString(leaf) != r.Leaf {
		fail("leaf is not standard base64")
	}
	leafHash := tlog.RecordHash(leaf)
	if leafHash != decodeHash("leaf_hash", r.LeafHash) {
		fail("tlog.RecordHash(leaf) = %s, receipt leaf_hash %s", leafHash, r.LeafHash)
	}
	fmt.Printf("ok    tlog.RecordHash(leaf) = leaf_hash %s\n", leafHash)
	if len(leaf) > 2 && leaf[0] == 0x01 && (leaf[1] == 0x01 || leaf[1] == 0x02) {
		if !json.Valid(leaf[2:]) {
			fail("leaf v1 kind %d: the record is not JSON", leaf[1])
		}
		fmt.Printf("ok    leaf v1 kind %d with a JSON record (%d bytes)\n", leaf[1], len(leaf))
	}

	proof := make(tlog.RecordProof, len(r.InclusionProof.Hashes))
	for i, h := range r.InclusionProof.Hashes {
		proof[i] = decodeHash("proof hash", h)
	}
	if err := tlog.CheckRecord(proof, size, root, index, leafHash); err != nil {
		fail("tlog.CheckRecord(index %d, size %d): %v", index, size, err)
	}
	fmt.Printf("ok    tlog.CheckRecord: entry %d is in the tree of size %d (%d proof hashes)\n",
		index, size, len(proof))
	fmt.Println("PASS")
}
