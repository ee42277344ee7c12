//go:build race

package ui

// raceEnabled is true under the race detector, which slows the pure-Go
// SQLite store about twentyfold; the browser tests then wait longer.
const raceEnabled = true
