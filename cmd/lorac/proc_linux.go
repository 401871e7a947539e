package main

import "syscall"

// dieWithParent has the kernel kill the model program when lorac dies, even
// by SIGKILL, which lorac cannot catch to pass on. (The signal follows the
// death of the thread that started the child; Go's runtime keeps its
// threads, as nothing here locks one to a goroutine that exits.)
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
