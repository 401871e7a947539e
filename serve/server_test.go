package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// TestBatchIndependence: many concurrent requests on different adapters
// (and the base), greedy and sampled, joining and leaving the running
// batch at different steps (more than one group of the rows graph), each
// get the tokens and logits of the same request run alone in the server
// (within 1e-5; in fact equal), and those are the tokens of the one-row
// Decode path with logits close to its (1e-5 of the largest logit one row
// at a time, 1e-4 with the rows graph); with both schedulers.
func TestBatchIndependence(t *testing.T) {
	for _, perRow := range []bool{false, true} {
		t.Run(fmt.Sprintf("perRow=%v", perRow), func(t *testing.T) { batchIndependence(t, perRow) })
	}
}

func batchIndependence(t *testing.T, perRow bool) {
	f := newFixture(t, 4, Config{MaxBatch: 11, PerRow: perRow}, 0)
	if !perRow && f.srv.sched.groups == nil {
		t.Fatal("the scheduler does not use the rows graph")
	}
	type job struct {
		adapter string
		prompt  []int32
		n       int
		s       engine.Sampler
		seed    uint64
	}
	type result struct {
		toks   []int32
		logits [][]float32
	}
	names := []string{"", "a0", "a1", "a2", "a3"}
	var jobs []job
	for i := range 24 {
		s := engine.Sampler{}
		if i%2 == 1 {
			s = engine.Sampler{Temperature: 0.9, TopK: 20, TopP: 0.95}
		}
		// Some prompts take several prefill steps (prefillChunk).
		prompt := tok.ByteTokenizer{}.Encode(fmt.Sprintf("request %d says %s", i, strings.Repeat("x", (i%5)*20)))
		jobs = append(jobs, job{names[i%len(names)], prompt, 3 + (i*7)%20, s, uint64(i)})
	}
	run := func(j job) result {
		req := &Request{Ctx: context.Background(), Prompt: j.prompt, MaxTokens: j.n, Sampler: j.s, Seed: j.seed, keepLogits: true}
		if j.adapter != "" {
			ad, err := f.srv.adapters.Acquire(j.adapter)
			if err != nil {
				t.Error(err)
				return result{}
			}
			defer f.srv.adapters.Release(ad)
			req.Adapter = ad
		}
		events, err := f.srv.sched.Submit(req)
		if err != nil {
			t.Error(err)
			return result{}
		}
		var r result
		for ev := range events {
			if ev.Done {
				if ev.Err != nil || ev.Finish != "length" {
					t.Errorf("adapter %q: ended with %v, finish %q", j.adapter, ev.Err, ev.Finish)
				}
				break
			}
			r.toks = append(r.toks, ev.Token)
			r.logits = append(r.logits, ev.Logits)
		}
		return r
	}
	alone := make([]result, len(jobs))
	for i, j := range jobs {
		alone[i] = run(j)
	}
	together := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { together[i] = run(j) })
	}
	wg.Wait()
	for i, j := range jobs {
		a, b := alone[i], together[i]
		if fmt.Sprint(a.toks) != fmt.Sprint(b.toks) {
			t.Errorf("adapter %q seed %d: tokens %v in a batch, %v alone", j.adapter, j.seed, b.toks, a.toks)
			continue
		}
		for k := range a.logits {
			for v := range a.logits[k] {
				if d := math.Abs(float64(a.logits[k][v] - b.logits[k][v])); d > 1e-5 {
					t.Errorf("adapter %q: token %d logit %d differs by %g in a batch from the request alone", j.adapter, k, v, d)
					break
				}
			}
		}
		wantToks, wantLogits := f.reference(j.adapter, j.prompt, j.n, j.s, j.seed)
		if fmt.Sprint(a.toks) != fmt.Sprint(wantToks) {
			t.Errorf("adapter %q seed %d: tokens %v in the server, %v with Decode", j.adapter, j.seed, a.toks, wantToks)
			continue
		}
		// The one-row-at-a-time scheduler runs Decode's own graph; the
		// rows graph adds each branch after the base product instead of
		// inside it, another rounding (about 1e-5 of the largest logit
		// after four layers of this model's large random adapters).
		tol := 1e-5
		if !perRow {
			tol = 1e-4
		}
		for k := range a.logits {
			var num, den float64
			for v := range a.logits[k] {
				num = max(num, math.Abs(float64(a.logits[k][v]-wantLogits[k][v])))
				den = max(den, math.Abs(float64(wantLogits[k][v])))
			}
			if num > tol*den {
				t.Errorf("adapter %q: token %d: logits differ from Decode's by %g (largest %g)", j.adapter, k, num, den)
				break
			}
		}
	}
	// The adapters must matter, or the test shows nothing.
	p := tok.ByteTokenizer{}.Encode("the same prompt")
	base, _ := f.reference("", p, 8, engine.Sampler{}, 1)
	a0, _ := f.reference("a0", p, 8, engine.Sampler{}, 1)
	a1, _ := f.reference("a1", p, 8, engine.Sampler{}, 1)
	if fmt.Sprint(base) == fmt.Sprint(a0) || fmt.Sprint(a0) == fmt.Sprint(a1) {
		t.Fatalf("the adapters do not change greedy outputs: base %v, a0 %v, a1 %v", base, a0, a1)
	}
}

// TestCompletions: the answer's shape, usage counts, model selection and
// concurrent HTTP clients on different adapters matching the requests
// alone.
func TestCompletions(t *testing.T) {
	f := newFixture(t, 3, Config{MaxBatch: 4}, 0)
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() {
			name := []string{"", "a0", "a1"}[i%3]
			prompt := fmt.Sprintf("client %d: ", i)
			body := map[string]any{"prompt": prompt, "max_tokens": 12, "temperature": 0, "model": name}
			c := f.complete(body)
			ids := tok.ByteTokenizer{}.Encode(prompt)
			want, _ := f.reference(name, ids, 12, engine.Sampler{}, 0)
			wantModel := name
			if name == "" {
				wantModel = model0
			}
			switch {
			case c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") || c.Model != wantModel || len(c.Choices) != 1:
				t.Errorf("answer %+v", c)
			case c.Choices[0].Text != jsonText(want):
				t.Errorf("model %q: text %q, alone %q", name, c.Choices[0].Text, jsonText(want))
			case c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "length":
				t.Errorf("finish_reason %v, want length", c.Choices[0].FinishReason)
			case c.Usage == nil || c.Usage.PromptTokens != len(ids) || c.Usage.CompletionTokens != 12 || c.Usage.TotalTokens != len(ids)+12:
				t.Errorf("usage %+v, want %d prompt and 12 completion tokens", c.Usage, len(ids))
			}
		})
	}
	wg.Wait()
	// The base's own name selects the base.
	a := f.complete(map[string]any{"prompt": "x", "max_tokens": 5, "temperature": 0})
	b := f.complete(map[string]any{"prompt": "x", "max_tokens": 5, "temperature": 0, "model": model0})
	if a.Choices[0].Text != b.Choices[0].Text {
		t.Errorf("the base by name %q and by default differ: %q, %q", model0, b.Choices[0].Text, a.Choices[0].Text)
	}
	// The same seed samples the same text; prompts as token ids work.
	s1 := f.complete(map[string]any{"prompt": []int{104, 105}, "max_tokens": 10, "temperature": 1.0, "seed": 42, "model": "a2"})
	s2 := f.complete(map[string]any{"prompt": "hi", "max_tokens": 10, "temperature": 1.0, "seed": 42, "model": "a2"})
	if s1.Choices[0].Text != s2.Choices[0].Text {
		t.Errorf("seed 42 sampled %q and %q", s1.Choices[0].Text, s2.Choices[0].Text)
	}
}

const model0 = "tiny"

// stream posts a streaming completion and returns the data lines.
func (f *fixture) stream(body map[string]any) []string {
	f.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(f.hs.URL+"/v1/completions", "application/json", strings.NewReader(string(b)))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		f.t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		} else if sc.Text() != "" {
			f.t.Errorf("stray line %q in the event stream", sc.Text())
		}
	}
	return data
}

// TestStream: server-sent events carry the same text as the answer
// without streaming, then the finish reason, the usage when asked, [DONE].
func TestStream(t *testing.T) {
	f := newFixture(t, 1, Config{}, 0)
	body := map[string]any{"prompt": "stream me", "max_tokens": 20, "temperature": 0.8, "seed": 3, "model": "a0"}
	whole := f.complete(body)
	body["stream"] = true
	body["stream_options"] = map[string]any{"include_usage": true}
	data := f.stream(body)
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("events %q", data)
	}
	var text strings.Builder
	var finish string
	var u *usage
	for _, d := range data[:len(data)-1] {
		var c completion
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("%v: %s", err, d)
		}
		if c.Usage != nil {
			u = c.Usage
			continue
		}
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if text.String() != whole.Choices[0].Text || finish != "length" {
		t.Errorf("streamed %q (finish %q), whole %q", text.String(), finish, whole.Choices[0].Text)
	}
	if u == nil || *u != *whole.Usage {
		t.Errorf("stream usage %+v, whole %+v", u, whole.Usage)
	}
}

// TestStop: a stop string ends the text before it, in both modes.
func TestStop(t *testing.T) {
	f := newFixture(t, 2, Config{}, 0)
	// Random weights write mostly bytes that are no text; find a greedy
	// output with a printable character past its start to stop at.
	var body map[string]any
	var want, stop string
	for i := 0; stop == "" && i < 40; i++ {
		prompt := fmt.Sprintf("prompt %d", i)
		model := []string{"", "a0", "a1"}[i%3]
		toks, _ := f.reference(model, tok.ByteTokenizer{}.Encode(prompt), 30, engine.Sampler{}, 0)
		for k := range toks {
			if toks[k] > ' ' && toks[k] < 0x7f {
				if k >= 2 {
					stop, want = string(rune(toks[k])), jsonText(toks[:k])
				}
				break
			}
		}
		body = map[string]any{"prompt": prompt, "max_tokens": 30, "temperature": 0, "model": model}
	}
	if stop == "" {
		t.Fatal("no printable character in 40 greedy outputs")
	}
	body["stop"] = []string{stop, "\x00never"}
	c := f.complete(body)
	if c.Choices[0].Text != want || *c.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: text %q finish %q; want %q, stop", stop, c.Choices[0].Text, *c.Choices[0].FinishReason, want)
	}
	body["stream"] = true
	var text strings.Builder
	for _, d := range f.stream(body) {
		var c completion
		if json.Unmarshal([]byte(d), &c) == nil && len(c.Choices) == 1 {
			text.WriteString(c.Choices[0].Text)
		}
	}
	if text.String() != want {
		t.Errorf("streamed with stop %q: %q, want %q", stop, text.String(), want)
	}
}

// TestTextState: stop strings across tokens, text held back while it may
// begin a stop string or end in an incomplete character.
func TestTextState(t *testing.T) {
	bt := tok.ByteTokenizer{}
	ts := &textState{tok: bt, stop: []string{"END"}}
	var got []string
	stopped := false
	for _, b := range []byte("hi E\xc3\xa9EN x ENEND tail") {
		d, s := ts.add(int32(b))
		got = append(got, d)
		if s {
			stopped = true
			break
		}
	}
	if !stopped || ts.text() != "hi E\u00e9EN x EN" || strings.Join(got, "") != ts.text() {
		t.Errorf("text %q released %q stopped %v", ts.text(), got, stopped)
	}
	// "E" is held while it may begin "END", and the first byte of é until
	// the second.
	if got[3] != "" || got[4] != "" || got[5] != "E\u00e9" {
		t.Errorf("released %q", got)
	}
	ts = &textState{tok: bt}
	ts.add(0xe2)
	if d := ts.flush(); d != "\xe2" {
		t.Errorf("flush released %q", d)
	}
}

// jsonText is the text of byte tokens as a JSON string carries it (each
// byte that is not UTF-8 becomes U+FFFD).
func jsonText(ids []int32) string {
	b, _ := json.Marshal(tok.ByteTokenizer{}.Decode(ids))
	var s string
	json.Unmarshal(b, &s)
	return s
}

// TestRequestErrors: each mistake gets a 4xx naming it, and the server
// goes on serving.
func TestRequestErrors(t *testing.T) {
	f := newFixture(t, 1, Config{MaxPromptTokens: 100, MaxTokens: 100}, 0)
	// A bad adapter in the directory: rank 2 where the model has 8.
	bad := filepath.Join(f.dir, "bad")
	f.saveAdapter(f.dir, "bad", 9)
	cfgPath := filepath.Join(bad, "adapter_config.json")
	b, _ := os.ReadFile(cfgPath)
	var cfg map[string]any
	json.Unmarshal(b, &cfg)
	cfg["lora_alpha"] = 3.0
	b, _ = json.Marshal(cfg)
	os.WriteFile(cfgPath, b, 0o644)
	for _, c := range []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"prompt": "x", "max_tokens": 101}, 400, "max_tokens 101: want 1 to 100"},
		{map[string]any{"prompt": "x", "max_tokens": 0}, 400, "max_tokens 0"},
		{map[string]any{"prompt": strings.Repeat("y", 101)}, 400, "101 tokens, more than the server's limit of 100"},
		{map[string]any{"prompt": strings.Repeat("y", 90), "max_tokens": 50}, 400, "exceed the model's context of 128"},
		{map[string]any{"prompt": ""}, 400, "no tokens"},
		{map[string]any{"max_tokens": 3}, 400, "prompt is required"},
		{map[string]any{"prompt": []int{1, 300}}, 400, "token id 300 is outside the vocabulary"},
		{map[string]any{"prompt": "x", "temperature": -1}, 400, "temperature -1"},
		{map[string]any{"prompt": "x", "top_p": 0}, 400, "top_p 0"},
		{map[string]any{"prompt": "x", "n": 2}, 400, "n 2"},
		{map[string]any{"prompt": "x", "logprobs": 1}, 400, "logprobs is not supported"},
		{map[string]any{"prompt": "x", "stop": 5}, 400, "stop must be"},
		{map[string]any{"prompt": "x", "model": "nope"}, 404, `model "nope": no such model`},
		{map[string]any{"prompt": "x", "model": "../a0"}, 404, "no such model"},
		{map[string]any{"prompt": "x", "model": "bad"}, 400, "adapter bad:"},
	} {
		code, out := f.post("/v1/completions", c.body)
		wantError(t, code, out, c.code, c.want)
	}
	code, out := f.post("/v1/completions", "not an object")
	wantError(t, code, out, 400, "not the expected JSON")
	code, body := f.get("/v1/nothing")
	if code != 404 || !strings.Contains(body, "POST /v1/completions") {
		t.Errorf("unknown endpoint: %d %s", code, body)
	}
	// The bad adapter's message names the problem: the scale.
	_, out = f.post("/v1/completions", map[string]any{"prompt": "x", "model": "bad"})
	if !strings.Contains(string(out), "scale") {
		t.Errorf("bad adapter: %s", out)
	}
	f.complete(map[string]any{"prompt": "still serving", "model": "a0"})
}

// TestModelsLoadUnload: the models list names the base and every adapter;
// adapters load from any path and unload by name.
func TestModelsLoadUnload(t *testing.T) {
	f := newFixture(t, 2, Config{}, 0)
	ids := func() []string {
		_, body := f.get("/v1/models")
		var l struct {
			Object string
			Data   []modelCard
		}
		if err := json.Unmarshal([]byte(body), &l); err != nil || l.Object != "list" {
			t.Fatalf("models: %v %s", err, body)
		}
		var out []string
		for _, c := range l.Data {
			out = append(out, c.ID)
		}
		return out
	}
	if got := fmt.Sprint(ids()); got != "[tiny a0 a1]" {
		t.Errorf("models %s", got)
	}
	elsewhere := f.saveAdapter(t.TempDir(), "x", 55)
	f.adapter["ext"] = elsewhere
	code, out := f.post("/v1/load_lora_adapter", map[string]any{"lora_name": "ext", "lora_path": elsewhere})
	if code != 200 || !strings.Contains(string(out), "ext") {
		t.Fatalf("load: %d %s", code, out)
	}
	if got := fmt.Sprint(ids()); got != "[tiny a0 a1 ext]" {
		t.Errorf("models after load %s", got)
	}
	c := f.complete(map[string]any{"prompt": "q", "max_tokens": 6, "temperature": 0, "model": "ext"})
	want, _ := f.reference("ext", tok.ByteTokenizer{}.Encode("q"), 6, engine.Sampler{}, 0)
	if c.Choices[0].Text != jsonText(want) {
		t.Errorf("loaded adapter: %q, alone %q", c.Choices[0].Text, jsonText(want))
	}
	code, out = f.post("/v1/load_lora_adapter", map[string]any{"lora_name": "ext", "lora_path": elsewhere})
	wantError(t, code, out, 400, "already loaded")
	code, out = f.post("/v1/load_lora_adapter", map[string]any{"lora_name": "y", "lora_path": t.TempDir()})
	wantError(t, code, out, 400, "adapter y:")
	code, out = f.post("/v1/unload_lora_adapter", map[string]any{"lora_name": "ext"})
	if code != 200 {
		t.Fatalf("unload: %d %s", code, out)
	}
	code, out = f.post("/v1/completions", map[string]any{"prompt": "q", "model": "ext"})
	wantError(t, code, out, 404, "no such model")
	code, out = f.post("/v1/unload_lora_adapter", map[string]any{"lora_name": "ext"})
	wantError(t, code, out, 404, "no such model")
}

// TestLRU: adapters beyond the budget evict the least recently used idle
// one; one in use is never evicted.
func TestLRU(t *testing.T) {
	f := newFixture(t, 3, Config{}, 0)
	per := int64(len(f.srv.core.LoRA)) * 4
	r := NewRegistry(f.srv.core.Spec, f.dir, 2*per)
	get := func(name string) *Adapter {
		a, err := r.Acquire(name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a0 := get("a0")
	r.Release(a0)
	a1 := get("a1")
	r.Release(a1)
	get("a0") // a0 is now the most recent, and held
	a2 := get("a2")
	if n, b := r.Resident(); n != 2 || b != 2*per {
		t.Errorf("resident %d adapters, %d bytes; want 2, %d", n, b, 2*per)
	}
	for _, a := range r.List() {
		if want := a.Name != "a1"; a.Resident != want {
			t.Errorf("%s resident %v, want %v (a1 was least recently used)", a.Name, a.Resident, want)
		}
	}
	// a0 and a2 are held: a1 cannot come back.
	if _, err := r.Acquire("a1"); err != ErrBudget {
		t.Errorf("a1 with the budget held by a0 and a2: %v, want ErrBudget", err)
	}
	r.Release(a2)
	if _, err := r.Acquire("a1"); err != nil {
		t.Errorf("a1 after a2 was released: %v", err)
	}
	// An adapter larger than the whole budget is a bad request.
	small := NewRegistry(f.srv.core.Spec, f.dir, per/2)
	if _, err := small.Acquire("a0"); err == nil || !strings.Contains(err.Error(), "more than the whole adapter budget") {
		t.Errorf("over budget: %v", err)
	}
}

// TestCancelTimeoutShutdown: a client that goes away frees its slot at the
// next step; a request past the timeout gets 504; a shutdown finishes the
// running request.
func TestCancelTimeoutShutdown(t *testing.T) {
	f := newFixture(t, 1, Config{MaxBatch: 1}, 0)
	stepped := make(chan int, 1000)
	f.srv.sched.SetHooks(func(n int) { stepped <- n; time.Sleep(2 * time.Millisecond) }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	b, _ := json.Marshal(map[string]any{"prompt": "long", "max_tokens": 120})
	req, _ := http.NewRequestWithContext(ctx, "POST", f.hs.URL+"/v1/completions", strings.NewReader(string(b)))
	done := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	<-stepped // the long request runs
	cancel()
	<-done
	// With one slot, this completes only once the cancelled request has
	// left it; had it run on, its 120 tokens would take 120 steps.
	c := f.complete(map[string]any{"prompt": "next", "max_tokens": 3})
	if c.Usage.CompletionTokens != 3 {
		t.Errorf("after a cancel: %+v", c.Usage)
	}
	if n := len(stepped) + 1; n >= 120 {
		t.Errorf("%d steps ran: the cancelled request kept its slot", n)
	}

	slow := newFixture(t, 0, Config{Timeout: 20 * time.Millisecond}, 0)
	slow.srv.sched.SetHooks(func(int) { time.Sleep(2 * time.Millisecond) }, nil)
	code, out := slow.post("/v1/completions", map[string]any{"prompt": "slow", "max_tokens": 100})
	wantError(t, code, out, 504, "timeout")

	// Shutdown: the running request ends with all its tokens.
	f2 := newFixture(t, 0, Config{}, 0)
	running := make(chan struct{})
	var once sync.Once
	f2.srv.sched.SetHooks(func(int) { once.Do(func() { close(running) }); time.Sleep(time.Millisecond) }, nil)
	got := make(chan completion, 1)
	go func() { got <- f2.complete(map[string]any{"prompt": "finish me", "max_tokens": 60}) }()
	<-running // the request is in the batch, however slow the machine
	f2.srv.Draining()
	if code, _ := f2.get("/health"); code != 503 {
		t.Errorf("health while draining: %d", code)
	}
	f2.hs.Config.Shutdown(context.Background())
	select {
	case c := <-got:
		if c.Usage.CompletionTokens != 60 {
			t.Errorf("the request running at shutdown got %d tokens, want 60", c.Usage.CompletionTokens)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the running request did not finish at shutdown")
	}
}

// TestHealthMetrics: /health answers, /metrics has the server's metrics in
// the Prometheus text format.
func TestHealthMetrics(t *testing.T) {
	f := newFixture(t, 1, Config{}, 0)
	if code, body := f.get("/health"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("health: %d %s", code, body)
	}
	f.complete(map[string]any{"prompt": "m", "max_tokens": 4, "model": "a0"})
	f.post("/v1/completions", map[string]any{"prompt": "m", "model": "zzz"})
	code, body := f.get("/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`lorac_requests_total{code="200",endpoint="completions"} 1`,
		`lorac_requests_total{code="404",endpoint="completions"} 1`,
		`lorac_tokens_total{kind="completion"} 4`,
		`lorac_tokens_total{kind="prompt"} 1`,
		`lorac_adapters_resident 1`,
		`lorac_queue_depth 0`,
		`lorac_batch_size_count 4`,
		`lorac_time_to_first_token_seconds_count{model_kind="adapter"} 1`,
		`lorac_inter_token_seconds_count 3`,
		"# TYPE lorac_time_to_first_token_seconds histogram",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestLoadDoesNotBlockOthers: while one adapter loads (held up here), a
// request on another adapter completes, and a second request on the
// loading adapter waits for the same load instead of reading it again.
func TestLoadDoesNotBlockOthers(t *testing.T) {
	f := newFixture(t, 2, Config{}, 0)
	f.complete(map[string]any{"prompt": "warm", "max_tokens": 2, "model": "a0"})
	release := make(chan struct{})
	var mu sync.Mutex
	reads := map[string]int{}
	f.srv.adapters.mu.Lock()
	f.srv.adapters.beforeRead = func(name string) {
		mu.Lock()
		reads[name]++
		mu.Unlock()
		if name == "a1" {
			<-release
		}
	}
	f.srv.adapters.mu.Unlock()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { f.complete(map[string]any{"prompt": "slow load", "max_tokens": 3, "model": "a1"}) })
	}
	// The a1 load is held; a0 and the base still answer.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := reads["a1"]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the a1 load never started")
		}
	}
	done := make(chan struct{})
	go func() {
		f.complete(map[string]any{"prompt": "meanwhile", "max_tokens": 3, "model": "a0"})
		f.complete(map[string]any{"prompt": "meanwhile", "max_tokens": 3})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a request on a0 waited for a1's load")
	}
	close(release)
	wg.Wait()
	if reads["a1"] != 1 {
		t.Errorf("a1 was read %d times for two concurrent requests, want once", reads["a1"])
	}
}

// TestPrefillLongPrompts: long prompts (up to four chunks of the prefill
// graph, the last one partial) join a batch whose other rows are already
// decoding, so prefilling and decoding rows share steps and groups; every
// request gets the greedy tokens of the one-row Decode path alone and
// logits within 1e-4 of its largest (the rows graph's tolerance), and the
// prompts go in one chunk per call.
func TestPrefillLongPrompts(t *testing.T) {
	f := newFixture(t, 2, Config{MaxBatch: 8}, 0)
	s := f.srv.sched
	c := s.core
	if !c.HasPrefill() || s.groups == nil {
		t.Fatal("the scheduler does not prefill with the rows graph")
	}
	T := c.Spec.Prefill
	type job struct {
		adapter string
		prompt  []int32
		n       int
	}
	mk := func(i, length int) []int32 {
		p := tok.ByteTokenizer{}.Encode(strings.Repeat(fmt.Sprintf("long prompt %d, ", i), 40))
		return p[:length]
	}
	decoders := []job{{"", mk(0, 3), 40}, {"a0", mk(1, 7), 40}, {"a1", mk(2, T), 40}}
	long := []job{{"a0", mk(3, 4*T-5), 6}, {"", mk(4, 2*T), 5}, {"a1", mk(5, T+1), 7}, {"a0", mk(6, 3*T+2), 4}}
	submit := func(j job) <-chan Event {
		req := &Request{Ctx: context.Background(), Prompt: j.prompt, MaxTokens: j.n, keepLogits: true}
		if j.adapter != "" {
			ad, err := f.srv.adapters.Acquire(j.adapter)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.srv.adapters.Release(ad) })
			req.Adapter = ad
		}
		ev, err := s.Submit(req)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	type result struct {
		toks   []int32
		logits [][]float32
	}
	collect := func(ev <-chan Event, first chan<- struct{}) result {
		var r result
		for e := range ev {
			if e.Done {
				if e.Err != nil || e.Finish != "length" {
					t.Errorf("ended with %v, finish %q", e.Err, e.Finish)
				}
				break
			}
			if len(r.toks) == 0 && first != nil {
				close(first)
			}
			r.toks = append(r.toks, e.Token)
			r.logits = append(r.logits, e.Logits)
		}
		return r
	}
	before := s.prefills.Load()
	jobs := append(append([]job{}, decoders...), long...)
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range decoders {
		first := make(chan struct{})
		ev := submit(j)
		wg.Go(func() { results[i] = collect(ev, first) })
		<-first // decoding before the long prompts arrive
	}
	for i, j := range long {
		ev := submit(j)
		wg.Go(func() { results[len(decoders)+i] = collect(ev, nil) })
	}
	wg.Wait()
	calls := int64(0)
	for _, j := range jobs {
		calls += int64((len(j.prompt) + T - 1) / T)
	}
	if got := s.prefills.Load() - before; got != calls {
		t.Errorf("%d PrefillRows calls, want one per chunk: %d", got, calls)
	}
	for i, j := range jobs {
		want, wantLogits := f.reference(j.adapter, j.prompt, j.n, engine.Sampler{}, 0)
		got := results[i]
		if fmt.Sprint(got.toks) != fmt.Sprint(want) {
			t.Errorf("job %d (adapter %q, prompt %d tokens): tokens %v, %v with Decode alone", i, j.adapter, len(j.prompt), got.toks, want)
			continue
		}
		for k := range got.logits {
			var num, den float64
			for v := range got.logits[k] {
				num = max(num, math.Abs(float64(got.logits[k][v]-wantLogits[k][v])))
				den = max(den, math.Abs(float64(wantLogits[k][v])))
			}
			if num > 1e-4*den {
				t.Errorf("job %d: token %d: logits differ from Decode's by %g (largest %g)", i, k, num, den)
				break
			}
		}
	}
}

// TestGroupCachesOnDemand: a group of the rows graph allocates its caches
// when it first has a row, so a server sized for more groups than it uses
// does not pay for their caches.
func TestGroupCachesOnDemand(t *testing.T) {
	f := newFixture(t, 0, Config{MaxBatch: 16}, 0)
	s := f.srv.sched
	if len(s.groups) != 2 {
		t.Fatalf("%d groups for 16 rows, want 2", len(s.groups))
	}
	ev, err := s.Submit(&Request{Ctx: context.Background(), Prompt: []int32{1, 2, 3}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	for e := range ev {
		if e.Done {
			break
		}
	}
	if len(s.groups[0].kv) != s.core.Spec.KVRowsSize || s.groups[1].kv != nil {
		t.Errorf("caches of %d and %d elements, want %d and none", len(s.groups[0].kv), len(s.groups[1].kv), s.core.Spec.KVRowsSize)
	}
}
