package driver

import (
	"fmt"
	"os"
	"path/filepath"

	"lorac.dev/lorac/runtime/tok"
)

// TokenizerFor picks the tokenizer of a run: the tokenizer.json named by
// path; else the tokenizer.json of a Hugging Face model directory given as
// base (or holding the base weights file); else bytes (for a vocab of 256 or
// more). It returns what it chose ("bytes" or the file); its ids must fit
// the model's vocabulary. The server of `lorac serve` picks its tokenizer
// with it, as generate does.
func TokenizerFor(path, base string, vocab int) (tok.Tokenizer, string, error) {
	if path == "" && base != "" {
		if p := filepath.Join(baseDir(base), "tokenizer.json"); fileExists(p) {
			path = p
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
