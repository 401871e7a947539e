//go:build !amd64 || purego

package kern

// No SIMD variants outside amd64 (or with the purego tag): the pure-Go
// kernels run.
var isaLevels []isaLevel
