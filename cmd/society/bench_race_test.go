//go:build race

package main

// raceEnabled: the race detector enlarges every frame, so stack sizes
// measured under it say nothing about a normal build.
const raceEnabled = true
