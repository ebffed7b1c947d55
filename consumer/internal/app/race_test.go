//go:build race

package app_test

// raceEnabled: the binary under test is built with -race too, which reuses
// the packages the race-enabled test build already compiled.
const raceEnabled = true
