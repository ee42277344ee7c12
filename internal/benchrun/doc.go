// Package benchrun measures tandem as a user would, from outside: it
// starts `tandem serve` as a child process on a config of its own, loads it
// with wrk (closed loop) or a paced Go client (a fixed offered rate), and
// reports each figure as a ratio against a baseline measured in the same
// run, alternating baseline and tandem (A B A B) where both can run in
// turn. The figures (bench/README.md explains each):
//
//   - P1 sync fan-out (durable: false, respond: all) against a bare stdlib
//     fan-out handler;
//   - P2 durable accept (SQLite, fsync on, workers delivering) against the
//     HTTP ceiling, a trivial Go handler;
//   - P3 end to end (accept, deliver to both targets, backlog drained)
//     against the bare fan-out;
//   - P3b a fixed offered rate, the backlog sampled: flat or growing; with
//     Search, the highest flat rate by bisection;
//   - P4 durable respond: all against the bare fan-out;
//   - P5 the tandem process's RSS, after the bursts and with a backlog of
//     100k deliveries;
//   - P6 PostgreSQL end to end against SQLite's, and three replicas (three
//     processes) against one.
//
// Both `tandem bench` and `go run ./bench` call Run. Every load is bounded
// in time (and count), and everything runs on 127.0.0.1.
package benchrun
