package cuda

// OpenSimulator opens the PTX simulator (sim_test.go) as a device, for the
// external tests of this package.
func OpenSimulator() (*Device, error) { return open(simAPI(&simDevice{}), 0) }
