package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// dataRamp returns the tokens 0, 1, …, n−1, so a token names its position
// and windows can be checked by arithmetic.
func dataRamp(n int) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = int32(i)
	}
	return x
}

func TestSplitTokens(t *testing.T) {
	for _, c := range []struct {
		n         int
		frac      float64
		wantTrain int
	}{
		{100, 0.1, 90},
		{100, 0, 100},
		{100, 0.25, 75},
		{7, 0.5, 3}, // 3.5 rounds to 4 val tokens
		{10, 1, 0},
		{10, -0.5, 10},
	} {
		d := SplitTokens(dataRamp(c.n), c.frac)
		if len(d.Train) != c.wantTrain || len(d.Train)+len(d.Val) != c.n {
			t.Errorf("SplitTokens(%d, %v): train %d val %d, want train %d", c.n, c.frac, len(d.Train), len(d.Val), c.wantTrain)
			continue
		}
		// Val must be the end of the stream.
		for i, v := range d.Val {
			if int(v) != c.wantTrain+i {
				t.Fatalf("Val[%d] = %d, want %d", i, v, c.wantTrain+i)
			}
		}
	}
	d := SplitTokens(dataRamp(10), 0.5)
	_ = append(d.Train, -1)
	if d.Val[0] != 5 {
		t.Error("appending to Train overwrote Val")
	}
}

func TestLoadTextDataset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "corpus.txt")
	text := strings.Repeat("abcdefghij", 10)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := LoadTextDataset(path, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Train) != 90 || len(d.Val) != 10 {
		t.Fatalf("train %d val %d, want 90 and 10", len(d.Train), len(d.Val))
	}
	if got := (tok.ByteTokenizer{}).Decode(d.Val); got != "abcdefghij" {
		t.Errorf("Val decodes to %q", got)
	}

	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		frac float64
	}{
		{filepath.Join(dir, "missing.txt"), 0.1},
		{empty, 0.1},
		{path, 1},
		{path, -0.1},
	} {
		_, err := LoadTextDataset(c.path, c.frac)
		if err == nil || !strings.Contains(err.Error(), c.path) {
			t.Errorf("LoadTextDataset(%s, %v) error = %v, want one naming the file", c.path, c.frac, err)
		}
	}
}

func TestNewBatcherErrors(t *testing.T) {
	if _, err := NewBatcher(dataRamp(8), 2, 8); err == nil || !strings.Contains(err.Error(), "8 tokens") || !strings.Contains(err.Error(), "9") {
		t.Errorf("8 tokens for T=8: error %v, want one naming 8 tokens and a window of 9", err)
	}
	if _, err := NewBatcher(dataRamp(9), 2, 8); err != nil {
		t.Errorf("9 tokens for T=8: %v", err)
	}
	for _, bt := range [][2]int{{0, 4}, {2, 0}, {-1, 4}} {
		if _, err := NewBatcher(dataRamp(100), bt[0], bt[1]); err == nil {
			t.Errorf("NewBatcher(B=%d, T=%d) succeeded", bt[0], bt[1])
		}
	}
}

func TestBatcherNext(t *testing.T) {
	const n, B, T = 50, 4, 8
	bt, err := NewBatcher(dataRamp(n), B, T)
	if err != nil {
		t.Fatal(err)
	}
	in, tg := make([]int32, B*T), make([]int32, B*T)
	r := engine.NewRNG(1)
	starts := map[int32]bool{}
	for range 500 {
		bt.Next(r, in, tg)
		for row := range B {
			s := in[row*T]
			starts[s] = true
			for t2 := range T {
				i := row*T + t2
				if in[i] != s+int32(t2) || tg[i] != in[i]+1 {
					t.Fatalf("row %d: inputs %v targets %v are not a window and its shift", row, in[row*T:row*T+T], tg[row*T:row*T+T])
				}
			}
			if tg[row*T+T-1] >= n {
				t.Fatalf("window starting at %d runs past %d tokens", s, n)
			}
		}
	}
	// Every start in [0, n−T) is possible; 2000 draws over 42 should hit all.
	if len(starts) != n-T {
		t.Errorf("saw %d distinct starts, want %d", len(starts), n-T)
	}

	// The same RNG state gives the same batch.
	a, b := engine.NewRNG(5), engine.NewRNG(5)
	in2, tg2 := make([]int32, B*T), make([]int32, B*T)
	bt.Next(a, in, tg)
	bt.Next(b, in2, tg2)
	for i := range in {
		if in[i] != in2[i] || tg[i] != tg2[i] {
			t.Fatal("Next is not a function of the RNG state")
		}
	}
}

func TestBatcherSequential(t *testing.T) {
	const n, B, T = 70, 2, 8
	// (70−1)/8 = 8 windows, 4 full batches.
	bt, err := NewBatcher(dataRamp(n), B, T)
	if err != nil {
		t.Fatal(err)
	}
	if got := bt.SequentialBatches(); got != 4 {
		t.Fatalf("SequentialBatches() = %d, want 4", got)
	}
	in, tg := make([]int32, B*T), make([]int32, B*T)
	seen := make([]int, n)
	i := 0
	for ; bt.Sequential(i, in, tg); i++ {
		for k := range in {
			if tg[k] != in[k]+1 {
				t.Fatalf("batch %d: target %d is not input %d shifted", i, tg[k], in[k])
			}
			seen[tg[k]]++
		}
		for row := range B {
			if want := int32((i*B + row) * T); in[row*T] != want {
				t.Fatalf("batch %d row %d starts at %d, want %d", i, row, in[row*T], want)
			}
		}
	}
	if i != 4 {
		t.Fatalf("Sequential gave %d batches, want 4", i)
	}
	// Every target position 1..64 is scored exactly once: no overlap, no gap.
	for pos := 1; pos <= 64; pos++ {
		if seen[pos] != 1 {
			t.Fatalf("token %d is a target %d times", pos, seen[pos])
		}
	}
	if bt.Sequential(-1, in, tg) {
		t.Error("Sequential(-1) = true")
	}
}

func TestWholeLines(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Recipe 1: soup.\nIngredients: 2 cups of ri", "Recipe 1: soup."},
		{"a.\nb.\nc", "a.\nb."},
		{"Day 4. Wind from the north. Sea ca", "Day 4. Wind from the north."},
		{"no stop at all", "no stop at all"},
		{"\nleading break only", "\nleading break only"},
	} {
		if got := wholeLines(c.in); got != c.want {
			t.Errorf("wholeLines(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
