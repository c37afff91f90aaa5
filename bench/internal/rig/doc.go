// Package rig is what the benchmark tools share: a fresh buildkitd per
// measurement, toxiproxy latency in front of a server, the median and
// range of a measurement, and running bkcache and reading its outputs
// (bench and bench/real; bench/churn takes the median).
package rig
