//go:build unix && !solaris && !aix

package driver

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestOpenOutLocks: a second run on one output directory is refused, with
// the first one's pid, until the first ends.
func TestOpenOutLocks(t *testing.T) {
	dir := t.TempDir()
	release, err := openOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openOut(dir)
	want := fmt.Sprintf("another run (pid %d) is writing this directory", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second openOut = %v; want an error with %q", err, want)
	}
	release()
	release, err = openOut(dir)
	if err != nil {
		t.Fatalf("after the first run ended: %v", err)
	}
	release()
}
