package driver

// watchParent does nothing on Linux: lorac starts the model program with
// Pdeathsig set, so the kernel kills it when lorac dies.
func watchParent() {}
