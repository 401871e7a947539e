package driver

import (
	"fmt"
	"os"
	"path/filepath"

	"lorac.dev/lorac/runtime/tok"
)

// tokenizerFor picks the tokenizer of a run: the tokenizer.json named by
// path; else the tokenizer.json of a Hugging Face model directory given as
// base (or holding the base weights file); else bytes. Its ids must fit the
// model's vocabulary.
func tokenizerFor(path, base string, vocab int) (tok.Tokenizer, string, error) {
	if path == "" && base != "" {
		dir := base
		if fi, err := os.Stat(base); err == nil && !fi.IsDir() {
			dir = filepath.Dir(base)
		}
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
			path = filepath.Join(dir, "tokenizer.json")
		}
	}
	if path == "" {
		if vocab < 256 {
			return nil, "", fmt.Errorf("%w: the model's vocab %d is smaller than the byte tokenizer's 256; set vocab 256 or pass --tokenizer tokenizer.json", errUsage, vocab)
		}
		return tok.ByteTokenizer{}, "bytes", nil
	}
	tok, err := tok.LoadTokenizer(path)
	if err != nil {
		return nil, "", err
	}
	if n := tok.VocabSize(); n > vocab {
		return nil, "", fmt.Errorf("%s: %d tokens, more than the model's vocab %d", path, n, vocab)
	}
	return tok, path, nil
}

// TokenizerFor returns the tokenizer at path, else the tokenizer.json next
// to the base weights, else the byte tokenizer (for a vocab of 256 or more),
// and what it chose ("bytes" or the file). The server of `lorac serve`
// picks its tokenizer with it, as generate does.
func TokenizerFor(path, base string, vocab int) (tok.Tokenizer, string, error) {
	return tokenizerFor(path, base, vocab)
}
