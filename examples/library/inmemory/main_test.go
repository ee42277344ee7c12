package main

import (
	"bytes"
	"context"
	"testing"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	want := `register: succeeded
  user     succeeded (201) id=u_1
  welcome  succeeded (202)
register again: failed
  user     dead (409)
  welcome  skipped
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
