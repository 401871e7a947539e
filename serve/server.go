package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// Config holds the server's limits.
type Config struct {
	// Name is the base model's name: the model field that selects the
	// base (as does an empty one). Adapters go by their own names.
	Name string
	// MaxBatch is the most requests in the running batch; MaxQueue the
	// most waiting for a slot (0: unbounded).
	MaxBatch, MaxQueue int
	// MaxPromptTokens and MaxTokens bound a request's prompt and output
	// (0: the context); prompt plus output must fit the context as well.
	MaxPromptTokens, MaxTokens int
	// Timeout bounds a request's time in the server (0: none).
	Timeout time.Duration
	// PerRow decodes rows one after another with the one-row graphs even
	// when the model has the rows graph (for comparison).
	PerRow bool
}

// Server is an OpenAI-compatible completions server on one compiled model
// with many adapters.
type Server struct {
	core     *engine.Core
	tok      tok.Tokenizer
	eos      int32
	hasEOS   bool
	adapters *Registry
	sched    *Scheduler
	m        *metrics
	cfg      Config
	created  int64
	closing  atomic.Bool
}

// New returns a server on core, whose base is loaded; tk encodes prompts
// and decodes completions, adapters supplies the adapters by name.
func New(core *engine.Core, tk tok.Tokenizer, adapters *Registry, cfg Config) *Server {
	if cfg.Name == "" {
		cfg.Name = core.Spec.Name
	}
	ctx := core.Spec.Context
	if cfg.MaxPromptTokens <= 0 || cfg.MaxPromptTokens > ctx {
		cfg.MaxPromptTokens = ctx
	}
	if cfg.MaxTokens <= 0 || cfg.MaxTokens > ctx {
		cfg.MaxTokens = ctx
	}
	s := &Server{core: core, tok: tk, adapters: adapters, m: newMetrics(), cfg: cfg, created: time.Now().Unix()}
	if e, ok := tk.(interface{ EOS() (int32, bool) }); ok {
		s.eos, s.hasEOS = e.EOS()
	}
	s.sched = NewScheduler(core, cfg.MaxBatch, cfg.MaxQueue, cfg.PerRow)
	s.sched.SetHooks(s.observeStep, func(n int) { s.m.queue.Set(float64(n)) })
	adapters.mu.Lock()
	adapters.onChange = func(n int, b int64) { s.m.adapters.Set(float64(n)); s.m.adapterBytes.Set(float64(b)) }
	adapters.mu.Unlock()
	return s
}

func (s *Server) observeStep(n int) {
	s.m.batch.Observe(float64(n))
	s.m.running.Set(float64(n))
}

// Close stops scheduling after the running and queued requests finish.
// Call it after http.Server.Shutdown has returned.
func (s *Server) Close() { s.sched.Close() }

// Draining marks the server as shutting down: /health answers 503 so
// that load balancers stop sending requests.
func (s *Server) Draining() { s.closing.Store(true) }

// Handler routes the server's endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, name string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			h(sw, r)
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			s.m.requests.WithLabelValues(name, fmt.Sprint(sw.code)).Inc()
		})
	}
	route("POST /v1/completions", "completions", s.completions)
	route("GET /v1/models", "models", s.models)
	route("POST /v1/load_lora_adapter", "load_lora_adapter", s.loadAdapter)
	route("POST /v1/unload_lora_adapter", "unload_lora_adapter", s.unloadAdapter)
	route("GET /health", "health", s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s; the endpoints are POST /v1/completions, GET /v1/models, POST /v1/load_lora_adapter, POST /v1/unload_lora_adapter, GET /health, GET /metrics", r.Method, r.URL.Path))
	})
	return mux
}

// statusWriter records the status code for the requests metric and keeps
// flushing (server-sent events) working.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apiError writes an error in the OpenAI API's shape.
func apiError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": code,
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// maxBody bounds a request body.
const maxBody = 4 << 20

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("the request body is over %d bytes", maxBody))
		} else {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "the request body is not the expected JSON: "+err.Error())
		}
		return false
	}
	return true
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the server is shutting down")
		return
	}
	writeJSON(w, map[string]string{"status": "ok"})
}

type modelCard struct {
	ID      string  `json:"id"`
	Object  string  `json:"object"`
	Created int64   `json:"created"`
	OwnedBy string  `json:"owned_by"`
	Root    string  `json:"root"`
	Parent  *string `json:"parent"`
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	cards := []modelCard{{ID: s.cfg.Name, Object: "model", Created: s.created, OwnedBy: "lorac", Root: s.cfg.Name}}
	for _, a := range s.adapters.List() {
		parent := s.cfg.Name
		cards = append(cards, modelCard{ID: a.Name, Object: "model", Created: s.created, OwnedBy: "lorac", Root: a.Path, Parent: &parent})
	}
	writeJSON(w, map[string]any{"object": "list", "data": cards})
}

type loraRequest struct {
	Name string `json:"lora_name"`
	Path string `json:"lora_path"`
}

// adapterError answers an error of the registry.
func adapterError(w http.ResponseWriter, name string, err error) {
	var bad *BadAdapterError
	switch {
	case errors.Is(err, ErrUnknownAdapter):
		apiError(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("model %q: %v; GET /v1/models lists them", name, err))
	case errors.As(err, &bad):
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
	case errors.Is(err, ErrBudget):
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("adapter %s: %v; retry when requests finish, or raise --adapter-memory", name, err))
	default:
		apiError(w, http.StatusInternalServerError, "internal_error", err.Error())
	}
}

func (s *Server) loadAdapter(w http.ResponseWriter, r *http.Request) {
	var req loraRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Name == s.cfg.Name {
		apiError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("lora_name %q is the base model's name", req.Name))
		return
	}
	if err := s.adapters.Load(req.Name, req.Path); err != nil {
		adapterError(w, req.Name, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", req.Name)
}

func (s *Server) unloadAdapter(w http.ResponseWriter, r *http.Request) {
	var req loraRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := s.adapters.Unload(req.Name); err != nil {
		adapterError(w, req.Name, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", req.Name)
}

// completionRequest is the body of POST /v1/completions. Fields the server
// does not implement are rejected when set, not ignored.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int            `json:"top_k"`
	Stop          json.RawMessage `json:"stop"`
	Seed          *int64          `json:"seed"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N        *int            `json:"n"`
	BestOf   *int            `json:"best_of"`
	Echo     bool            `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	Suffix   *string         `json:"suffix"`
	Adapters json.RawMessage `json:"adapters"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type choice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

// badRequest is a request error: 400 with its message.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// parsePrompt accepts a string, a list of one string, a list of token ids,
// or a list of one list of token ids.
func (s *Server) parsePrompt(raw json.RawMessage) ([]int32, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest("prompt is required")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return s.tok.Encode(text), nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 {
			return nil, badRequest(fmt.Sprintf("prompt is a list of %d strings; the server takes one prompt per request", len(texts)))
		}
		return s.tok.Encode(texts[0]), nil
	}
	var ids []int32
	if json.Unmarshal(raw, &ids) != nil {
		var lists [][]int32
		if json.Unmarshal(raw, &lists) != nil {
			return nil, badRequest("prompt must be a string or a list of token ids")
		}
		if len(lists) != 1 {
			return nil, badRequest(fmt.Sprintf("prompt is a list of %d token lists; the server takes one prompt per request", len(lists)))
		}
		ids = lists[0]
	}
	for _, t := range ids {
		if t < 0 || int(t) >= s.core.Spec.Vocab {
			return nil, badRequest(fmt.Sprintf("prompt token id %d is outside the vocabulary [0, %d)", t, s.core.Spec.Vocab))
		}
	}
	return ids, nil
}

func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return nil, badRequest("stop must be a string or a list of strings")
	}
	var out []string
	for _, st := range many {
		if st != "" {
			out = append(out, st)
		}
	}
	return out, nil
}

var seedCounter atomic.Uint64

// validate turns the body into a scheduler request (without adapter and
// context) and the stop strings.
func (s *Server) validate(body *completionRequest) (*Request, []string, error) {
	switch {
	case body.N != nil && *body.N != 1:
		return nil, nil, badRequest(fmt.Sprintf("n %d: the server returns one choice per request; send n 1", *body.N))
	case body.BestOf != nil && *body.BestOf != 1:
		return nil, nil, badRequest("best_of is not supported")
	case body.Echo:
		return nil, nil, badRequest("echo is not supported")
	case body.Logprobs != nil:
		return nil, nil, badRequest("logprobs is not supported")
	case body.Suffix != nil:
		return nil, nil, badRequest("suffix is not supported")
	}
	req := &Request{MaxTokens: 16, Sampler: engine.Sampler{Temperature: 1}, EOS: s.eos, HasEOS: s.hasEOS}
	if body.MaxTokens != nil {
		req.MaxTokens = *body.MaxTokens
	}
	if req.MaxTokens < 1 || req.MaxTokens > s.cfg.MaxTokens {
		return nil, nil, badRequest(fmt.Sprintf("max_tokens %d: want 1 to %d", req.MaxTokens, s.cfg.MaxTokens))
	}
	if t := body.Temperature; t != nil {
		if !(*t >= 0) || math.IsInf(*t, 1) {
			return nil, nil, badRequest(fmt.Sprintf("temperature %g: want 0 (greedy) or more", *t))
		}
		req.Sampler.Temperature = *t
	}
	if p := body.TopP; p != nil {
		if !(*p > 0 && *p <= 1) {
			return nil, nil, badRequest(fmt.Sprintf("top_p %g: want a probability mass in (0, 1]", *p))
		}
		req.Sampler.TopP = *p
	}
	if k := body.TopK; k != nil {
		if *k < -1 {
			return nil, nil, badRequest(fmt.Sprintf("top_k %d: want -1 or 0 (all tokens) or more", *k))
		}
		req.Sampler.TopK = max(0, *k)
	}
	if body.Seed != nil {
		req.Seed = uint64(*body.Seed)
	} else {
		req.Seed = uint64(time.Now().UnixNano()) ^ seedCounter.Add(0x9e3779b97f4a7c15)
	}
	prompt, err := s.parsePrompt(body.Prompt)
	if err != nil {
		return nil, nil, err
	}
	switch ctx := s.core.Spec.Context; {
	case len(prompt) == 0:
		return nil, nil, badRequest("the prompt encodes to no tokens")
	case len(prompt) > s.cfg.MaxPromptTokens:
		return nil, nil, badRequest(fmt.Sprintf("the prompt has %d tokens, more than the server's limit of %d", len(prompt), s.cfg.MaxPromptTokens))
	case len(prompt)+req.MaxTokens > ctx:
		return nil, nil, badRequest(fmt.Sprintf("the prompt's %d tokens and max_tokens %d exceed the model's context of %d tokens; shorten the prompt or lower max_tokens", len(prompt), req.MaxTokens, ctx))
	}
	req.Prompt = prompt
	stop, err := parseStop(body.Stop)
	return req, stop, err
}

// maxMix is the most adapters one request may mix.
const maxMix = 16

type mixTerm struct {
	name   string
	weight float32
}

// parseMix reads a request's adapters field, a weighted mix such as
// [{"name": "a", "weight": 0.7}, {"name": "b", "weight": 0.3}]: nil when
// absent. The mix applies to the base, so model must name the base (or be
// empty); weights are finite, and may be negative or not sum to 1 (the
// mix is base + Σ weight · adapter's update, as PEFT's "cat"
// combination).
func (s *Server) parseMix(raw json.RawMessage, model string) ([]mixTerm, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []struct {
		Name   *string  `json:"name"`
		Weight *float64 `json:"weight"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil {
		return nil, badRequest(fmt.Sprintf("adapters must be a list of {\"name\": adapter, \"weight\": number}: %v", err))
	}
	switch {
	case model != s.cfg.Name:
		return nil, badRequest(fmt.Sprintf("model %q with adapters: a mix applies to the base; set model to %q (or leave it out) and list the adapter in adapters", model, s.cfg.Name))
	case len(items) == 0:
		return nil, badRequest("adapters is an empty list; list at least one adapter, or leave adapters out for the base alone")
	case len(items) > maxMix:
		return nil, badRequest(fmt.Sprintf("adapters lists %d adapters; a mix takes at most %d", len(items), maxMix))
	case !s.sched.Mixes():
		return nil, badRequest("weighted adapter mixes need the rows graph, and this server decodes one row at a time (a package compiled without a rows graph: recompile it with this lorac)")
	}
	out := make([]mixTerm, len(items))
	for i, it := range items {
		switch {
		case it.Name == nil || *it.Name == "":
			return nil, badRequest(fmt.Sprintf("adapters[%d] has no name", i))
		case *it.Name == s.cfg.Name:
			return nil, badRequest(fmt.Sprintf("adapters[%d] is the base model %q, which is not an adapter", i, *it.Name))
		case it.Weight == nil:
			return nil, badRequest(fmt.Sprintf("adapters[%d] (%s) has no weight", i, *it.Name))
		case math.IsNaN(*it.Weight) || math.Abs(*it.Weight) > math.MaxFloat32:
			return nil, badRequest(fmt.Sprintf("adapters[%d] (%s) has weight %g; want a finite number", i, *it.Name, *it.Weight))
		}
		out[i] = mixTerm{*it.Name, float32(*it.Weight)}
	}
	return out, nil
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return "cmpl-" + hex.EncodeToString(b[:])
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var body completionRequest
	if !decodeBody(w, r, &body) {
		return
	}
	req, stop, err := s.validate(&body)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	name, kind := body.Model, "base"
	if name == "" {
		name = s.cfg.Name
	}
	mix, err := s.parseMix(body.Adapters, name)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	switch {
	case mix != nil:
		for _, m := range mix {
			ad, err := s.adapters.Acquire(m.name)
			if err != nil {
				adapterError(w, m.name, err)
				return
			}
			defer s.adapters.Release(ad)
			req.Mix = append(req.Mix, Weighted{Adapter: ad, Weight: m.weight})
		}
		kind = "mix"
	case name != s.cfg.Name:
		ad, err := s.adapters.Acquire(name)
		if err != nil {
			adapterError(w, name, err)
			return
		}
		defer s.adapters.Release(ad)
		req.Adapter, kind = ad, "adapter"
	}
	ctx, cancel := context.WithCancel(r.Context())
	if s.cfg.Timeout > 0 {
		ctx, cancel = context.WithTimeout(r.Context(), s.cfg.Timeout)
	}
	defer cancel()
	req.Ctx = ctx
	events, err := s.sched.Submit(req)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	s.m.tokens.WithLabelValues("prompt").Add(float64(len(req.Prompt)))

	id, created := newID(), time.Now().Unix()
	out := &textState{tok: s.tok, stop: stop}
	var sse *sseWriter
	if body.Stream {
		sse = newSSE(w)
	}
	chunk := func(text string, finish *string) completion {
		return completion{ID: id, Object: "text_completion", Created: created, Model: name,
			Choices: []choice{{Index: 0, Text: text, FinishReason: finish}}}
	}
	last, n := arrived, 0
	finish := ""
	var fail error
	for ev := range events {
		if ev.Done {
			finish, fail = ev.Finish, ev.Err
			break
		}
		now := time.Now()
		if n == 0 {
			s.m.ttft.WithLabelValues(kind).Observe(now.Sub(arrived).Seconds())
		} else {
			s.m.perToken.Observe(now.Sub(last).Seconds())
		}
		last = now
		n++
		s.m.tokens.WithLabelValues("completion").Inc()
		if ev.EOS {
			continue
		}
		delta, stopped := out.add(ev.Token)
		if sse != nil && delta != "" {
			sse.send(chunk(delta, nil))
		}
		if stopped {
			finish = "stop"
			cancel() // the scheduler drops the row at its next step
			break
		}
	}
	if fail != nil && finish == "" {
		switch {
		case errors.Is(fail, context.DeadlineExceeded):
			msg := fmt.Sprintf("the request ran past the server's timeout of %v", s.cfg.Timeout)
			if sse != nil {
				sse.sendError(http.StatusGatewayTimeout, msg)
			} else {
				apiError(w, http.StatusGatewayTimeout, "timeout", msg)
			}
		case errors.Is(fail, context.Canceled):
			// The client went away; nobody reads an answer.
		default:
			if sse != nil {
				sse.sendError(http.StatusInternalServerError, fail.Error())
			} else {
				apiError(w, http.StatusInternalServerError, "internal_error", fail.Error())
			}
		}
		return
	}
	u := &usage{PromptTokens: len(req.Prompt), CompletionTokens: n, TotalTokens: len(req.Prompt) + n}
	if sse != nil {
		if rest := out.flush(); rest != "" {
			sse.send(chunk(rest, nil))
		}
		sse.send(chunk("", &finish))
		if body.StreamOptions != nil && body.StreamOptions.IncludeUsage {
			c := chunk("", nil)
			c.Choices, c.Usage = []choice{}, u
			sse.send(c)
		}
		sse.done()
		return
	}
	out.flush()
	c := chunk(out.text(), &finish)
	c.Usage = u
	writeJSON(w, c)
}

// textState turns sampled tokens into text, ends it at the first stop
// string, and for streaming releases only text that no later token can
// change: not a tail that may begin a stop string, nor an incomplete
// character.
type textState struct {
	tok  tok.Tokenizer
	stop []string
	ids  []int32
	full string // the decoded text, cut at a stop string once one appears
	sent int    // bytes of full released
}

// add appends a token and returns the newly released text and whether a
// stop string ended the text.
func (t *textState) add(id int32) (string, bool) {
	t.ids = append(t.ids, id)
	t.full = t.tok.Decode(t.ids)
	cut := -1
	for _, s := range t.stop {
		if i := strings.Index(t.full, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		t.full = t.full[:cut]
		return t.release(len(t.full)), true
	}
	safe := len(t.full) - incompleteTail(t.full)
	for _, s := range t.stop {
		for k := min(len(s)-1, safe); k > 0; k-- {
			if strings.HasSuffix(t.full[:safe], s[:k]) {
				safe -= k
				break
			}
		}
	}
	return t.release(safe), false
}

// incompleteTail is the length of what may still change at the end of
// decoded text: the bytes of a character whose last bytes have not come
// yet, or a U+FFFD that a tokenizer writes in their place.
func incompleteTail(s string) int {
	if strings.HasSuffix(s, "\uFFFD") {
		return len("\uFFFD")
	}
	for k := 1; k <= 3 && k <= len(s); k++ {
		if b := s[len(s)-k]; utf8.RuneStart(b) {
			if b >= 0xC0 && !utf8.FullRuneInString(s[len(s)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

func (t *textState) release(upto int) string {
	if upto <= t.sent {
		return ""
	}
	d := t.full[t.sent:upto]
	t.sent = upto
	return d
}

// flush releases whatever is held back, at the end of the text.
func (t *textState) flush() string { return t.release(len(t.full)) }

func (t *textState) text() string { return t.full }

// sseWriter writes server-sent events.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

func (s *sseWriter) send(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	s.rc.Flush()
}

func (s *sseWriter) sendError(code int, msg string) {
	s.send(map[string]any{"error": map[string]any{"message": msg, "code": code}})
	s.done()
}

func (s *sseWriter) done() {
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	s.rc.Flush()
}
