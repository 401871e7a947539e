package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/examples/tiny/model"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// fixture is a served tiny model with random base weights and adapters
// a0…a{n-1} in a directory, each with its own random weights.
type fixture struct {
	t       *testing.T
	base    []float32
	dir     string
	srv     *Server
	hs      *httptest.Server
	adapter map[string]string // name → directory
}

func newFixture(t *testing.T, adapters int, cfg Config, budget int64) *fixture {
	t.Helper()
	m := model.New()
	m.InitBase(7)
	f := &fixture{t: t, base: append([]float32(nil), m.Base...), dir: t.TempDir(), adapter: map[string]string{}}
	for i := range adapters {
		name := "a" + string(rune('0'+i))
		f.adapter[name] = f.saveAdapter(f.dir, name, uint64(100+i))
	}
	f.srv = New(m.State(), tok.ByteTokenizer{}, NewRegistry(model.Spec, f.dir, budget), cfg)
	f.hs = httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() { f.hs.Close(); f.srv.Close() })
	return f
}

// saveAdapter writes a PEFT adapter with random A and B (B nonzero, so the
// adapter changes the outputs) under parent/name.
func (f *fixture) saveAdapter(parent, name string, seed uint64) string {
	f.t.Helper()
	m := model.New()
	r := engine.NewRNG(seed)
	engine.InitNormal(m.LoRA, 0.2, r)
	dir := filepath.Join(parent, name)
	if err := m.SaveAdapter(dir); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

// reference runs a request alone on a fresh model: the tokens it samples
// and the logits of each.
func (f *fixture) reference(adapter string, prompt []int32, n int, s engine.Sampler, seed uint64) ([]int32, [][]float32) {
	f.t.Helper()
	m := model.New()
	copy(m.Base, f.base)
	if adapter == "" {
		m.Detach()
	} else if err := m.LoadAdapter(f.adapter[adapter]); err != nil {
		f.t.Fatal(err)
	}
	return f.decodeAlone(m, prompt, n, s, seed)
}

// referenceMix runs a request alone on a fresh model whose base has each
// adapter of the mix merged in, its update times its weight: what a
// weighted mix must compute without merging.
func (f *fixture) referenceMix(mix map[string]float32, prompt []int32, n int, s engine.Sampler, seed uint64) ([]int32, [][]float32) {
	f.t.Helper()
	base := append([]float32(nil), f.base...)
	for name, w := range mix {
		m := model.New()
		copy(m.Base, base)
		if err := m.LoadAdapter(f.adapter[name]); err != nil {
			f.t.Fatal(err)
		}
		for _, a := range m.Spec.Adapters {
			for j := range a.Out * a.Rank {
				m.LoRA[a.BOffset+j] *= w
			}
		}
		if err := m.Merge(); err != nil {
			f.t.Fatal(err)
		}
		copy(base, m.Base)
	}
	m := model.New()
	copy(m.Base, base)
	m.Detach()
	return f.decodeAlone(m, prompt, n, s, seed)
}

// decodeAlone samples n tokens after prompt with the one-row Decode.
func (f *fixture) decodeAlone(m *model.Model, prompt []int32, n int, s engine.Sampler, seed uint64) ([]int32, [][]float32) {
	f.t.Helper()
	r := engine.NewRNG(seed)
	var toks []int32
	var logits [][]float32
	var l []float32
	var err error
	for i, t := range prompt {
		if l, err = m.Decode(t, i); err != nil {
			f.t.Fatal(err)
		}
	}
	for k := range n {
		t := s.Sample(l, r)
		toks = append(toks, t)
		logits = append(logits, append([]float32(nil), l...))
		if k == n-1 {
			break
		}
		if l, err = m.Decode(t, len(prompt)+k); err != nil {
			f.t.Fatal(err)
		}
	}
	return toks, logits
}

// post sends a JSON body and returns the status and the response body.
func (f *fixture) post(path string, body any) (int, []byte) {
	f.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.Post(f.hs.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.hs.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// complete posts a completion and decodes the answer, failing on a status
// other than 200.
func (f *fixture) complete(body map[string]any) completion {
	f.t.Helper()
	code, out := f.post("/v1/completions", body)
	if code != http.StatusOK {
		f.t.Fatalf("POST /v1/completions %v: %d %s", body, code, out)
	}
	var c completion
	if err := json.Unmarshal(out, &c); err != nil {
		f.t.Fatalf("%v: %s", err, out)
	}
	return c
}

// wantError checks a status and that the error message mentions want.
func wantError(t *testing.T, code int, out []byte, wantCode int, want string) {
	t.Helper()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	json.Unmarshal(out, &e)
	if code != wantCode || !strings.Contains(e.Error.Message, want) {
		t.Errorf("got %d %s; want %d with an error mentioning %q", code, out, wantCode, want)
	}
}
