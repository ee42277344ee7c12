// Package model holds the Promela model of tandem's delivery protocol
// (delivery.pml) and the script that checks it with spin (check.sh). Its
// tests tie the model's status names and transitions to internal/record,
// so the model and the code cannot drift apart, and run the check. See
// "The model" in docs/guarantees.md.
package model
