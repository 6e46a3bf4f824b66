// Package progress shows how far long work (building a layer, reading an
// input) has got: bars on a terminal, periodic log lines with human sizes
// and rates elsewhere, nothing when quiet. Each unit of work is a Tracker
// counting bytes against an optional total.
package progress
