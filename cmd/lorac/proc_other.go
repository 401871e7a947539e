//go:build !linux

package main

import "syscall"

// dieWithParent has no kernel help outside Linux; the model program's
// driver watches for lorac's death itself (driver.ParentPIDEnv).
func dieWithParent() *syscall.SysProcAttr { return nil }
