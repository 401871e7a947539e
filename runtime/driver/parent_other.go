//go:build !linux

package driver

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// watchParent ends the process when lorac, which started it, is gone, so
// that a killed lorac does not leave its model program training and writing
// the output directory. Without Linux's Pdeathsig the portable sign is a
// new parent pid (the orphan is adopted). It watches only when lorac
// started the process (LORAC_PARENT_PID): a user's own program outlives
// its shell as usual.
func watchParent() {
	ppid, err := strconv.Atoi(os.Getenv(ParentPIDEnv))
	if err != nil || ppid != os.Getppid() {
		return
	}
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != ppid {
				fmt.Fprintln(os.Stderr, "lorac: the lorac process that started this run is gone; stopping")
				os.Exit(1)
			}
		}
	}()
}
