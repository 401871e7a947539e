package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
)

// Adapter is one validated PEFT adapter in the layout of the compiled
// model's adapter store (engine.Core.LoRA): the scheduler copies Weights
// into the store before it decodes a row that uses the adapter.
type Adapter struct {
	Name    string
	Path    string
	Weights []float32
}

// Bytes is the memory the adapter's weights take.
func (a *Adapter) Bytes() int64 { return int64(len(a.Weights)) * 4 }

// BadAdapterError is an adapter that cannot serve this model: a missing
// directory, a corrupt file, or modules, shapes, ranks or scales other than
// the compiled ones. The server answers it with 400.
type BadAdapterError struct{ Err error }

func (e *BadAdapterError) Error() string { return e.Err.Error() }
func (e *BadAdapterError) Unwrap() error { return e.Err }

// ErrUnknownAdapter is a model name that is neither the base nor an adapter.
var ErrUnknownAdapter = errors.New("no such model or adapter")

// ErrBudget is an adapter that does not fit the memory budget even with
// every idle adapter evicted (the others serve running requests).
var ErrBudget = errors.New("the adapter memory budget is full of adapters in use")

// entry is a known adapter: its path, and its weights while resident.
type entry struct {
	path    string
	dynamic bool // registered by the load endpoint, not found in the directory
	ad      *Adapter
	refs    int       // running requests holding it
	used    time.Time // last acquire, for LRU
	loading chan struct{}
	err     error // the last load's error, while loading is closed and ad nil
}

// Registry keeps adapters: found in a directory (each subdirectory one PEFT
// adapter, named by it) or registered by path, loaded on first use,
// validated against the compiled model, and kept under a byte budget by
// evicting the least recently used idle ones. Loading happens in the
// requesting goroutine without the registry's lock held, so a load never
// blocks requests for other adapters.
type Registry struct {
	spec   *engine.ModelSpec
	dir    string
	budget int64 // bytes; ≤ 0 means no limit

	mu       sync.Mutex
	entries  map[string]*entry
	resident int64
	// onChange reports the resident count and bytes (for metrics).
	onChange func(n int, bytes int64)
	// beforeRead, in tests, runs before an adapter's files are read.
	beforeRead func(name string)
}

// NewRegistry returns a registry for spec's adapters under dir ("" for
// none) within budget bytes (≤ 0: unbounded).
func NewRegistry(spec *engine.ModelSpec, dir string, budget int64) *Registry {
	return &Registry{spec: spec, dir: dir, budget: budget, entries: map[string]*entry{}}
}

// validName rejects names that would escape the adapters directory.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || name != filepath.Clean(name) {
		return fmt.Errorf("%q is not an adapter name (a directory name, no slashes)", name)
	}
	return nil
}

// lookup finds or creates the entry of name; with mu held.
func (r *Registry) lookup(name string) (*entry, error) {
	if e := r.entries[name]; e != nil {
		return e, nil
	}
	if r.dir == "" || validName(name) != nil {
		return nil, ErrUnknownAdapter
	}
	p := filepath.Join(r.dir, name)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return nil, ErrUnknownAdapter
	}
	e := &entry{path: p}
	r.entries[name] = e
	return e, nil
}

// Acquire returns the adapter name, loading it if it is not resident, and
// holds it (it is not evicted) until Release.
func (r *Registry) Acquire(name string) (*Adapter, error) {
	r.mu.Lock()
	for {
		e, err := r.lookup(name)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		if e.ad != nil {
			e.refs++
			e.used = time.Now()
			r.mu.Unlock()
			return e.ad, nil
		}
		if e.loading != nil {
			ch := e.loading
			r.mu.Unlock()
			<-ch
			r.mu.Lock()
			if r.entries[name] == e && e.ad == nil && e.err != nil {
				err := e.err
				e.loading, e.err = nil, nil
				r.mu.Unlock()
				return nil, err
			}
			continue
		}
		e.loading = make(chan struct{})
		hook := r.beforeRead
		r.mu.Unlock()
		if hook != nil {
			hook(name)
		}
		ad, err := r.read(name, e.path)
		r.mu.Lock()
		if err == nil {
			err = r.makeRoom(ad.Bytes())
		}
		if err != nil {
			e.err = err
			close(e.loading)
			e.loading = nil
			r.mu.Unlock()
			return nil, err
		}
		close(e.loading)
		e.loading, e.ad, e.refs, e.used = nil, ad, 1, time.Now()
		r.resident += ad.Bytes()
		r.changed()
		r.mu.Unlock()
		return ad, nil
	}
}

// Release ends a hold that Acquire took.
func (r *Registry) Release(a *Adapter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[a.Name]; e != nil && e.ad == a && e.refs > 0 {
		e.refs--
	}
}

// read loads and validates one PEFT adapter directory against the model.
func (r *Registry) read(name, dir string) (*Adapter, error) {
	if len(r.spec.Adapters) == 0 {
		return nil, &BadAdapterError{fmt.Errorf("adapter %s: the model has no lora block, so it serves no adapters", name)}
	}
	// A core without a base: LoadAdapter validates the directory against
	// the compiled modules, shapes, ranks and scales, and only then fills
	// the adapter store, which becomes this adapter's weights.
	c := &engine.Core{Spec: r.spec, LoRA: make([]float32, r.spec.LoRASize)}
	if err := c.LoadAdapter(dir); err != nil {
		return nil, &BadAdapterError{fmt.Errorf("adapter %s: %v", name, err)}
	}
	return &Adapter{Name: name, Path: dir, Weights: c.LoRA}, nil
}

// makeRoom evicts idle adapters, least recently used first, until need
// more bytes fit the budget; with mu held.
func (r *Registry) makeRoom(need int64) error {
	if r.budget <= 0 {
		return nil
	}
	if need > r.budget {
		return &BadAdapterError{fmt.Errorf("the adapter takes %d bytes, more than the whole adapter budget of %d bytes", need, r.budget)}
	}
	for r.resident+need > r.budget {
		var victim *entry
		for _, e := range r.entries {
			if e.ad != nil && e.refs == 0 && (victim == nil || e.used.Before(victim.used)) {
				victim = e
			}
		}
		if victim == nil {
			return ErrBudget
		}
		r.resident -= victim.ad.Bytes()
		victim.ad = nil
	}
	return nil
}

func (r *Registry) changed() {
	if r.onChange == nil {
		return
	}
	n := 0
	for _, e := range r.entries {
		if e.ad != nil {
			n++
		}
	}
	r.onChange(n, r.resident)
}

// Load registers name for the adapter at path (the load endpoint) and
// loads it now, so a bad adapter is reported at once. A name already
// registered is an error: unload it first.
func (r *Registry) Load(name, path string) error {
	if name == "" {
		return &BadAdapterError{errors.New("lora_name is empty")}
	}
	if path == "" {
		return &BadAdapterError{errors.New("lora_path is empty")}
	}
	r.mu.Lock()
	if _, ok := r.entries[name]; ok {
		r.mu.Unlock()
		return &BadAdapterError{fmt.Errorf("adapter %s is already loaded; unload it first", name)}
	}
	r.mu.Unlock()
	ad, err := r.read(name, path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.entries[name]; ok {
		return &BadAdapterError{fmt.Errorf("adapter %s is already loaded; unload it first", name)}
	}
	if err := r.makeRoom(ad.Bytes()); err != nil {
		return err
	}
	r.entries[name] = &entry{path: path, dynamic: true, ad: ad, used: time.Now()}
	r.resident += ad.Bytes()
	r.changed()
	return nil
}

// Unload drops name's weights (requests running on it finish with the
// weights they hold) and forgets an adapter the load endpoint registered;
// one from the directory loads again on its next use.
func (r *Registry) Unload(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[name]
	if !ok {
		return ErrUnknownAdapter
	}
	if e.loading != nil {
		return &BadAdapterError{fmt.Errorf("adapter %s is loading; unload it when it has loaded", name)}
	}
	if e.ad != nil {
		r.resident -= e.ad.Bytes()
	}
	delete(r.entries, name)
	r.changed()
	return nil
}

// AdapterInfo describes a known adapter for the models endpoint.
type AdapterInfo struct {
	Name, Path string
	Resident   bool
}

// List returns every adapter: the directory's subdirectories and those
// the load endpoint registered, sorted by name.
func (r *Registry) List() []AdapterInfo {
	seen := map[string]AdapterInfo{}
	if r.dir != "" {
		if des, err := os.ReadDir(r.dir); err == nil {
			for _, d := range des {
				if d.IsDir() {
					if _, err := os.Stat(filepath.Join(r.dir, d.Name(), format.PEFTConfigFile)); err == nil {
						seen[d.Name()] = AdapterInfo{Name: d.Name(), Path: filepath.Join(r.dir, d.Name())}
					}
				}
			}
		}
	}
	r.mu.Lock()
	for name, e := range r.entries {
		seen[name] = AdapterInfo{Name: name, Path: e.path, Resident: e.ad != nil}
	}
	r.mu.Unlock()
	out := make([]AdapterInfo, 0, len(seen))
	for _, a := range seen {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Resident returns the number of resident adapters and their bytes.
func (r *Registry) Resident() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.entries {
		if e.ad != nil {
			n++
		}
	}
	return n, r.resident
}
