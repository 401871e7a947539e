package conformance

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"lorac.dev/lorac/internal/gen/hfgpt2"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/tok"
)

// jsonlExpected is testdata/jsonl/expected.json (make_jsonl_fixtures.py).
type jsonlExpected struct {
	Seq   int `json:"seq"`
	Files map[string]struct {
		Loss          float64 `json:"loss"`
		LossBase      float64 `json:"loss_base"`
		TrainedTokens int     `json:"trained_tokens"`
		Examples      []struct {
			IDs   []int32 `json:"ids"`
			Train []bool  `json:"train"`
		} `json:"examples"`
	} `json:"files"`
}

// TestJSONLMaskedLossMatchesTransformers: lorac's eval path on JSONL
// records of each shape gives the masked loss transformers + PEFT compute
// on the same examples (prompt, non-assistant and padding tokens labelled
// -100), with and without the adapter, and tokenizes and masks each
// example as the reference did, though by another method (lorac tokenizes
// the pieces of an example one by one; the reference masks by character
// offsets and by the chat template's generation blocks).
func TestJSONLMaskedLossMatchesTransformers(t *testing.T) {
	dir := filepath.Join("testdata", "jsonl")
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want jsonlExpected
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if want.Seq != hfgpt2.Seq {
		t.Fatalf("the fixtures are cut to seq %d, the hfgpt2 package is compiled for %d", want.Seq, hfgpt2.Seq)
	}
	tokPath := filepath.Join(dir, "tokenizer.json")
	bpe, err := tok.LoadTokenizer(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := driver.LoadSpecials(tokPath, bpe)
	if err != nil {
		t.Fatal(err)
	}
	if sp.EOS < 0 || sp.AddBOS || sp.Chat == nil {
		t.Fatalf("specials %+v: want an EOS, no BOS added, and the fixture's chat template", sp)
	}
	enc, err := driver.NewEncoder(bpe.Encode, sp, "") // the fixture tokenizer's own chat template
	if err != nil {
		t.Fatal(err)
	}
	gpt2 := filepath.Join("testdata", "gpt2")
	m := hfgpt2.New()
	if err := m.LoadBase(filepath.Join(gpt2, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := m.LoadAdapter(filepath.Join(gpt2, "adapter")); err != nil {
		t.Fatal(err)
	}
	if len(want.Files) != 3 {
		t.Fatalf("expected.json has %d files, want text, prompt and chat", len(want.Files))
	}
	for name, w := range want.Files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			recs, err := driver.ReadJSONL(path)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := enc.Examples(path, recs)
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) != len(w.Examples) {
				t.Fatalf("%d examples, the reference has %d", len(exs), len(w.Examples))
			}
			for i, ex := range exs {
				n := min(len(ex.Tokens), want.Seq+1)
				if !slices.Equal(ex.Tokens[:n], w.Examples[i].IDs) || !slices.Equal(ex.Train[:n], w.Examples[i].Train) {
					t.Errorf("example %d:\n ids   %v\n train %v\nreference\n ids   %v\n train %v", i, ex.Tokens[:n], ex.Train[:n], w.Examples[i].IDs, w.Examples[i].Train)
				}
			}
			m.Attach()
			got, err := driver.EvalData(m, path, tokPath, "", "", io.Discard) // the tokenizer's own chat template
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("loss %.7f (reference %.7f), base %.7f, %d tokens", got.Loss, w.Loss, w.LossBase, got.Tokens)
			if got.Tokens != w.TrainedTokens {
				t.Errorf("%d tokens scored, the reference trains %d", got.Tokens, w.TrainedTokens)
			}
			if math.Abs(got.Loss-w.Loss) > 1e-5 {
				t.Errorf("masked loss with the adapter %.7f, transformers + PEFT %.7f", got.Loss, w.Loss)
			}
			m.Detach()
			base, err := driver.EvalData(m, path, tokPath, "", "", io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(base.Loss-w.LossBase) > 1e-5 {
				t.Errorf("masked loss of the base %.7f, transformers %.7f", base.Loss, w.LossBase)
			}
			if math.Abs(w.Loss-w.LossBase) < 1e-3 {
				t.Errorf("the adapter changes the reference loss by under 1e-3: the check cannot tell them apart")
			}
		})
	}

	// The fixture's template is ChatML with generation blocks: the built-in
	// chatml renders the same text, so it must score the same.
	m.Attach()
	own, err := driver.EvalData(m, filepath.Join(dir, "chat.jsonl"), tokPath, "", "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := driver.EvalData(m, filepath.Join(dir, "chat.jsonl"), tokPath, "", "chatml", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if own != builtin {
		t.Errorf("the tokenizer's ChatML template scores %+v, the built-in chatml %+v", own, builtin)
	}
}
