package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// newHMACForTest computes a GitHub-style signature independently of
// internal/target.
func newHMACForTest(secret string) (func([]byte) string, error) {
	return func(b []byte) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		return hex.EncodeToString(m.Sum(nil))
	}, nil
}
