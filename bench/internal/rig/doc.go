// Package rig is what the benchmark tools (bench, bench/real) share: a
// fresh buildkitd per measurement, toxiproxy latency in front of a
// server, the median and range of a measurement, and running bkcache and
// reading its outputs.
package rig
