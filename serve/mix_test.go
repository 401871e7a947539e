package serve

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// TestMixes: requests with weighted mixes of adapters, running in one batch
// with plain adapters, other mixes and the base, get the tokens of the base
// with the mix merged in (update × weight, summed), and logits within the
// rows graph's rounding of it; a mix of one adapter of weight 1 answers as
// that adapter does.
func TestMixes(t *testing.T) {
	f := newFixture(t, 3, Config{MaxBatch: 12}, 0)
	type job struct {
		adapter string
		mix     map[string]float32
		prompt  []int32
		n       int
	}
	mixes := []map[string]float32{
		{"a0": 0.7, "a1": 0.3},
		{"a1": -0.5, "a2": 1.25},
		{"a0": 0.2, "a1": 0.3, "a2": 0.5},
		{"a2": 1},
	}
	var jobs []job
	for i := range 16 {
		text := fmt.Sprintf("mix %d %s", i, "abcdefgh"[:i%8])
		if i%5 == 0 {
			text += strings.Repeat(" long prompt", 6) // crosses prefill chunks
		}
		j := job{prompt: tok.ByteTokenizer{}.Encode(text), n: 4 + i%9}
		switch i % 4 {
		case 0, 2:
			j.mix = mixes[(i/2)%len(mixes)]
		case 1:
			j.adapter = fmt.Sprintf("a%d", i%3)
		}
		jobs = append(jobs, j)
	}
	type result struct {
		toks   []int32
		logits [][]float32
	}
	run := func(j job) (r result) {
		req := &Request{Ctx: context.Background(), Prompt: j.prompt, MaxTokens: j.n, keepLogits: true}
		var names []string
		if j.adapter != "" {
			names = []string{j.adapter}
		}
		for name := range j.mix {
			names = append(names, name)
		}
		for _, name := range names {
			ad, err := f.srv.adapters.Acquire(name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.srv.adapters.Release(ad)
			if j.mix == nil {
				req.Adapter = ad
			} else {
				req.Mix = append(req.Mix, Weighted{Adapter: ad, Weight: j.mix[name]})
			}
		}
		events, err := f.srv.sched.Submit(req)
		if err != nil {
			t.Error(err)
			return
		}
		for ev := range events {
			if ev.Done {
				if ev.Err != nil {
					t.Error(ev.Err)
				}
				break
			}
			r.toks = append(r.toks, ev.Token)
			r.logits = append(r.logits, ev.Logits)
		}
		return r
	}
	got := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { got[i] = run(j) })
	}
	wg.Wait()
	for i, j := range jobs {
		var wantToks []int32
		var wantLogits [][]float32
		if j.mix != nil {
			wantToks, wantLogits = f.referenceMix(j.mix, j.prompt, j.n, engine.Sampler{}, 0)
		} else {
			wantToks, wantLogits = f.reference(j.adapter, j.prompt, j.n, engine.Sampler{}, 0)
		}
		if fmt.Sprint(got[i].toks) != fmt.Sprint(wantToks) {
			t.Errorf("job %d (adapter %q, mix %v): tokens %v, merged reference %v", i, j.adapter, j.mix, got[i].toks, wantToks)
			continue
		}
		for k := range wantLogits {
			var num, den float64
			for v := range wantLogits[k] {
				num = max(num, math.Abs(float64(got[i].logits[k][v]-wantLogits[k][v])))
				den = max(den, math.Abs(float64(wantLogits[k][v])))
			}
			if num > 1e-4*den {
				t.Errorf("job %d (mix %v) token %d: logits differ from the merged reference by %g (largest %g)", i, j.mix, k, num, den)
				break
			}
		}
	}
	// The mixes must matter: a mix's greedy tokens differ from each of
	// its adapters' alone.
	p := tok.ByteTokenizer{}.Encode("the same prompt")
	mixed, _ := f.referenceMix(mixes[0], p, 8, engine.Sampler{}, 0)
	a0, _ := f.reference("a0", p, 8, engine.Sampler{}, 0)
	a1, _ := f.reference("a1", p, 8, engine.Sampler{}, 0)
	if fmt.Sprint(mixed) == fmt.Sprint(a0) || fmt.Sprint(mixed) == fmt.Sprint(a1) {
		t.Fatalf("the mix does not change greedy outputs: mix %v, a0 %v, a1 %v", mixed, a0, a1)
	}

	// Over HTTP: a mix of one adapter of weight 1 is that adapter.
	one := f.complete(map[string]any{"prompt": "hello", "max_tokens": 6, "temperature": 0,
		"adapters": []map[string]any{{"name": "a1", "weight": 1}}})
	alone := f.complete(map[string]any{"prompt": "hello", "max_tokens": 6, "temperature": 0, "model": "a1"})
	if one.Choices[0].Text != alone.Choices[0].Text {
		t.Errorf("a mix of a1 alone says %q, a1 says %q", one.Choices[0].Text, alone.Choices[0].Text)
	}
	if one.Model != f.srv.cfg.Name {
		t.Errorf("a mix answers as model %q, want the base's name %q", one.Model, f.srv.cfg.Name)
	}
}

// TestMixErrors: malformed mixes are 400s that say what to change, an
// unknown adapter a 404, and a one-row-at-a-time server refuses mixes.
func TestMixErrors(t *testing.T) {
	f := newFixture(t, 2, Config{}, 0)
	w := func(name string, weight any) map[string]any { return map[string]any{"name": name, "weight": weight} }
	many := make([]map[string]any, maxMix+1)
	for i := range many {
		many[i] = w("a0", 0.1)
	}
	for _, c := range []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"prompt": "x", "model": "a0", "adapters": []any{w("a1", 1)}}, 400, "a mix applies to the base"},
		{map[string]any{"prompt": "x", "adapters": []any{}}, 400, "empty list"},
		{map[string]any{"prompt": "x", "adapters": "a0"}, 400, "adapters must be a list"},
		{map[string]any{"prompt": "x", "adapters": []any{map[string]any{"name": "a0", "weight": 1, "scale": 2}}}, 400, "unknown field"},
		{map[string]any{"prompt": "x", "adapters": []any{map[string]any{"weight": 1}}}, 400, "adapters[0] has no name"},
		{map[string]any{"prompt": "x", "adapters": []any{map[string]any{"name": "a0"}}}, 400, "adapters[0] (a0) has no weight"},
		{map[string]any{"prompt": "x", "adapters": []any{w("a0", 1e39)}}, 400, "want a finite number"},
		{map[string]any{"prompt": "x", "adapters": []any{w(f.srv.cfg.Name, 1)}}, 400, "is the base model"},
		{map[string]any{"prompt": "x", "adapters": many}, 400, fmt.Sprintf("at most %d", maxMix)},
		{map[string]any{"prompt": "x", "adapters": []any{w("a0", 0.5), w("nope", 0.5)}}, 404, `model "nope": no such model`},
	} {
		code, out := f.post("/v1/completions", c.body)
		wantError(t, code, out, c.code, c.want)
	}
	// A failed mix releases what it acquired.
	f.srv.adapters.mu.Lock()
	if e := f.srv.adapters.entries["a0"]; e == nil || e.refs != 0 {
		t.Errorf("after a failed mix a0 is %+v; want resident with no references", e)
	}
	f.srv.adapters.mu.Unlock()
	g := newFixture(t, 1, Config{PerRow: true}, 0)
	code, out := g.post("/v1/completions", map[string]any{"prompt": "x", "adapters": []any{w("a0", 1)}})
	wantError(t, code, out, 400, "one row at a time")
}
