package benchrun

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// commits is a reading of a child's group-commit histogram
// (tandem_group_commit_ops): how many store transactions, holding how
// many writes.
type commits struct {
	at         time.Time
	count, ops float64
}

// readCommits scrapes the child's /metrics; a zero reading when it cannot.
func (c *child) readCommits() commits {
	out := commits{at: time.Now()}
	resp, err := http.Get(c.url + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "tandem_group_commit_ops_count":
			out.count = v
		case "tandem_group_commit_ops_sum":
			out.ops = v
		}
	}
	return out
}

// since describes the commits between an earlier reading and this one.
func (c commits) since(before commits) string {
	n, ops := c.count-before.count, c.ops-before.ops
	if n <= 0 {
		return "no commits"
	}
	secs := c.at.Sub(before.at).Seconds()
	return fmt.Sprintf("%.0f commits/s, %.1f writes per commit", n/secs, ops/n)
}
