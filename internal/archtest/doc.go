// Package archtest holds tests of the repository's structure, such as the
// import rule of the design document.
package archtest
