package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"lorac.dev/lorac/runtime/format"
)

// lockFile is the file in an output directory that a run holds locked while
// it writes there.
const lockFile = ".lorac.lock"

// runOutputs are the names a training run writes into its output directory;
// an earlier run left them if any exists. loss.png is the plot of runs
// before loss.svg, so that --overwrite clears it too.
var runOutputs = []string{format.PEFTWeightsFile, format.PEFTConfigFile, "model.safetensors", LossPlotFile, "loss.png", "checkpoint", "checkpoint.old"}

// errLocked is what lockExclusive returns when another process holds the lock.
var errLocked = errors.New("locked")

// openOut makes dir (the output directory of a run) if needed, checks that it
// is a writable directory before any work is done, and locks it for this
// process until release is called, so that two runs never write one
// directory (or its subdirectories) at once.
func openOut(dir string) (release func(), err error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%w: --out %s is a file; give a directory (it is made if missing)", errUsage, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--out %s: cannot make the output directory: %v; choose another --out", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--out %s: the output directory is not writable: %v; choose another --out", dir, err)
	}
	if err := lockExclusive(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			who := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					who = fmt.Sprintf("another run (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("--out %s: %s is writing this directory; wait for it to end, stop it, or choose another --out", dir, who)
		}
		return nil, fmt.Errorf("%s: locking the output directory: %v", path, err)
	}
	// The pid is for the message above, shown to a second run.
	if err := errors.Join(f.Truncate(0), writeAt0(f, strconv.Itoa(os.Getpid())+"\n")); err != nil {
		f.Close()
		return nil, fmt.Errorf("--out %s: the output directory is not writable: %v; choose another --out", dir, err)
	}
	// The lock file stays: removing it would let a third run lock a new
	// file while a second still waits on the old one.
	return func() { f.Close() }, nil
}

func writeAt0(f *os.File, s string) error {
	_, err := f.WriteAt([]byte(s), 0)
	return err
}

// removeStale removes what a run killed while saving left in dir: the
// temporary checkpoint directories of saveCheckpoint and the temporary files
// of format.WriteFileAtomic, for the names a run writes. The caller holds
// the lock of dir (or of a directory above it), so no live writer owns them.
func removeStale(dir string) error {
	for _, name := range runOutputs {
		stale, err := filepath.Glob(filepath.Join(dir, "."+name+".tmp*"))
		if err != nil {
			return err
		}
		for _, p := range stale {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("removing a killed run's leftover: %v", err)
			}
		}
	}
	return nil
}

// earlierRun names the first file or directory of an earlier run in dir, or
// returns "" when there is none.
func earlierRun(dir string) string {
	for _, name := range runOutputs {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return ""
}

// ParentPIDEnv is the environment variable in which lorac passes its pid to
// the model program it starts, for watchParent.
const ParentPIDEnv = "LORAC_PARENT_PID"

// CheckOutFile checks, before any work, that the file the option opt names
// can be written: not a directory, not one of the inputs (a file, the files
// of a directory, or the shards next to a .index.json), which the run reads
// while writing it, and in an existing writable directory.
// Its refusals are usage errors (errors.Is(err, ErrUsage)).
func CheckOutFile(opt, path string, inputs ...string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%w: %s %s is a directory; give a file path, such as %s", errUsage, opt, path, filepath.Join(path, "model.safetensors"))
		}
		for _, in := range inputs {
			if same := sameAsInput(fi, in); same != "" {
				return fmt.Errorf("%w: %s %s is the input %s, which it would overwrite; give a new file path", errUsage, opt, path, same)
			}
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".lorac-write-check-*")
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in %s: %v; choose another path", opt, path, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// sameAsInput returns the file of input that is out, or "".
func sameAsInput(out os.FileInfo, input string) string {
	if input == "" {
		return ""
	}
	fi, err := os.Stat(input)
	if err != nil {
		return ""
	}
	dir := ""
	switch {
	case fi.IsDir():
		dir = input
	case strings.HasSuffix(input, ".index.json"):
		dir = filepath.Dir(input)
	}
	if os.SameFile(out, fi) {
		return input
	}
	if dir == "" {
		return ""
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err == nil && os.SameFile(out, fi) {
			return p
		}
	}
	return ""
}
