// Package gen lists every generated Go package committed to the repository,
// with the source each is compiled from, and generates them. Its
// subdirectories hold the packages the tests compile against:
//
//   - gpt2/, llama/, llamaplus/ from gpt2.lora, llama.lora and
//     llamaplus.lora here: small models that internal/gentest checks
//     against the reference interpreter (llamaplus has every feature of
//     the Llama 3, Mistral and Qwen families);
//   - gpt2cuda/ from gpt2cuda.lora, gpt2.lora with a target cuda block: its
//     cuda.go (NewCUDA, NewDevice) imports lorac.dev/lorac/device, and
//     runtime/cuda's tests run it on the PTX simulator against its New;
//   - hfgpt2/, hfllama/, hfllama3/, hfqwen2/, hfqwen3/, hfmistral/, hfgemma/, hfgemma2/, hfgemma3/ from
//     what `lorac init --from` makes of the transformers + PEFT fixtures in
//     conformance/testdata: what conformance loads the fixtures' weights
//     and adapters into.
//
// The pairs cannot be one: the committed fixtures fix a vocab of 64, which
// fits neither the byte tokenizer nor the tokenizer.json gentest runs the
// driver with, and they have no dropout and no init random.
//
// The list also holds examples/tiny/model, the package a downstream user
// sees. Regenerate them all with
//
//	go run ./internal/cmd/regen
//
// (or go generate ./internal/gen): the command imports none of the
// generated packages, so it works when they no longer compile. TestFresh
// fails when a committed file differs from what lorac generates today.
package gen

//go:generate go run lorac.dev/lorac/internal/cmd/regen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/hfimport"
	"lorac.dev/lorac/runtime/driver"
)

// Command regenerates every package of Packages.
const Command = "go run ./internal/cmd/regen"

// Package is one committed generated package. Paths are relative to the
// module root and slash-separated.
type Package struct {
	Dir  string // the package's directory
	Name string // its Go package name
	// The source: a .lora file, or a Hugging Face model directory
	// (config.json, with a PEFT adapter in adapter/) compiled from the
	// .lora text lorac init writes for it.
	Lora, HF string
}

// Packages are all the committed generated packages.
var Packages = []Package{
	{Dir: "examples/tiny/model", Name: "model", Lora: "examples/tiny/tiny.lora"},
	{Dir: "internal/gen/gpt2", Name: "gpt2", Lora: "internal/gen/gpt2.lora"},
	{Dir: "internal/gen/gpt2cuda", Name: "gpt2cuda", Lora: "internal/gen/gpt2cuda.lora"},
	{Dir: "internal/gen/llama", Name: "llama", Lora: "internal/gen/llama.lora"},
	{Dir: "internal/gen/llamaplus", Name: "llamaplus", Lora: "internal/gen/llamaplus.lora"},
	{Dir: "internal/gen/hfgpt2", Name: "hfgpt2", HF: "conformance/testdata/gpt2"},
	{Dir: "internal/gen/hfllama", Name: "hfllama", HF: "conformance/testdata/llama"},
	{Dir: "internal/gen/hfllama3", Name: "hfllama3", HF: "conformance/testdata/llama3"},
	{Dir: "internal/gen/hfqwen2", Name: "hfqwen2", HF: "conformance/testdata/qwen2"},
	{Dir: "internal/gen/hfqwen3", Name: "hfqwen3", HF: "conformance/testdata/qwen3"},
	{Dir: "internal/gen/hfmistral", Name: "hfmistral", HF: "conformance/testdata/mistral"},
	{Dir: "internal/gen/hfgemma", Name: "hfgemma", HF: "conformance/testdata/gemma"},
	{Dir: "internal/gen/hfgemma2", Name: "hfgemma2", HF: "conformance/testdata/gemma2"},
	{Dir: "internal/gen/hfgemma3", Name: "hfgemma3", HF: "conformance/testdata/gemma3"},
}

// Generate compiles p's source, found under the module root, into Go files.
func (p Package) Generate(root string) ([]codegen.File, error) {
	if p.HF == "" {
		return compile.Generate(filepath.Join(root, p.Lora), p.Name)
	}
	dir := filepath.Join(root, p.HF)
	src, err := hfimport.Source(dir, filepath.Join(dir, "adapter"))
	if err != nil {
		return nil, err
	}
	return compile.GenerateSource(filepath.Base(dir)+".lora", []byte(src), p.Name)
}

// Write regenerates p under root: it writes the files that changed and
// removes generated .go files lorac no longer produces.
func (p Package) Write(root string) error {
	files, err := p.Generate(root)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, p.Dir)
	if err := compile.WritePackage(dir, files); err != nil {
		return err
	}
	stale, err := p.Extra(root, files)
	for _, name := range stale {
		if err == nil {
			err = os.Remove(filepath.Join(dir, name))
		}
	}
	return err
}

// Extra lists the generated .go files in p's directory that are not among
// files.
func (p Package) Extra(root string, files []codegen.File) ([]string, error) {
	dir := filepath.Join(root, p.Dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f.Name] = true
	}
	var extra []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || want[e.Name()] {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(src, []byte("// "+codegen.Header+"\n")) {
			extra = append(extra, e.Name())
		}
	}
	return extra, nil
}

// Root finds the module root: the nearest directory, from the working
// directory up, whose go.mod declares lorac.dev/lorac.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module lorac.dev/lorac\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("not inside the lorac.dev/lorac module")
		}
		dir = up
	}
}

// DataFile is a committed data file made by Go code.
type DataFile struct {
	Path string // relative to the module root, slash-separated
	Make func() []byte
}

// DataFiles are the committed data files Regenerate also writes: the
// synthetic instruction set the README trains examples/tiny on.
var DataFiles = []DataFile{
	{Path: "examples/tiny/instruct.jsonl", Make: func() []byte { return driver.InstructionSet(400, 1) }},
}

// Regenerate rewrites every package of Packages and every file of
// DataFiles under root.
func Regenerate(root string) error {
	for _, p := range Packages {
		if err := p.Write(root); err != nil {
			return fmt.Errorf("%s: %w", p.Dir, err)
		}
	}
	for _, f := range DataFiles {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(f.Path)), f.Make(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
