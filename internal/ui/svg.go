package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	tapi "github.com/tandem-run/tandem/api"
)

// The inline SVG of the pages. Colours come from classes in app.css (the
// Content-Security-Policy allows no inline styles); every text is escaped.

var esc = template.HTMLEscapeString

type bucket struct{ accepted, succeeded, failed int }

// barChart draws a route's buckets as stacked bars: succeeded, failed,
// and the rest (still open), over the whole accepted height.
func barChart(route string, bs []bucket, from time.Time, width time.Duration) template.HTML {
	const w, h, gap = 240, 56, 2
	bw := w / len(bs)
	top := 1
	total := bucket{}
	for _, b := range bs {
		top = max(top, b.accepted)
		total.accepted += b.accepted
		total.succeeded += b.succeeded
		total.failed += b.failed
	}
	var sb strings.Builder
	label := fmt.Sprintf("%s, last hour: %d accepted, %d succeeded, %d failed", route, total.accepted, total.succeeded, total.failed)
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, w, h+12, w, h+12, esc(label))
	fmt.Fprintf(&sb, `<line class="axis" x1="0" y1="%d" x2="%d" y2="%d"/>`, h, w, h)
	for i, b := range bs {
		x := i*bw + gap/2
		y := h
		seg := func(n int, class string) {
			if n == 0 {
				return
			}
			hh := max(1, n*(h-2)/top)
			y -= hh
			fmt.Fprintf(&sb, `<rect class="%s" x="%d" y="%d" width="%d" height="%d"/>`, class, x, y, bw-gap, hh)
		}
		seg(b.succeeded, "ok")
		seg(b.failed, "bad")
		seg(b.accepted-b.succeeded-b.failed, "open")
		start := from.Add(time.Duration(i) * width)
		fmt.Fprintf(&sb, `<rect class="hit" x="%d" y="0" width="%d" height="%d"><title>%s–%s: %d accepted, %d succeeded, %d failed</title></rect>`,
			i*bw, bw, h, start.UTC().Format("15:04"), start.Add(width).UTC().Format("15:04"), b.accepted, b.succeeded, b.failed)
	}
	fmt.Fprintf(&sb, `<text class="tick" x="0" y="%d">-60m</text><text class="tick end" x="%d" y="%d">now</text></svg>`, h+11, w, h+11)
	return template.HTML(sb.String())
}

// stepGraph draws a message's steps: a box per delivery in columns by
// dependency depth, arrows for after-links, dashed arrows from a step to
// its compensation (drawn in a band below).
func stepGraph(ds []tapi.Delivery) template.HTML {
	const bw, bh, colGap, rowGap, pad = 150, 44, 50, 16, 10
	depth := map[string]int{}
	var fwd, comps []tapi.Delivery
	for _, d := range ds {
		if d.Compensates != "" {
			comps = append(comps, d)
		} else {
			fwd = append(fwd, d)
		}
	}
	// ds is in dependency order: a step's after-steps come before it.
	for _, d := range fwd {
		n := 0
		for _, a := range d.After {
			n = max(n, depth[a]+1)
		}
		depth[d.Step] = n
	}
	type pos struct{ x, y int }
	at := map[string]pos{}
	rows := map[int]int{}
	maxCol, maxRow := 0, 0
	for _, d := range fwd {
		c := depth[d.Step]
		at[d.Step] = pos{pad + c*(bw+colGap), pad + rows[c]*(bh+rowGap)}
		rows[c]++
		maxCol, maxRow = max(maxCol, c), max(maxRow, rows[c])
	}
	band := pad + maxRow*(bh+rowGap) + 20
	compRows := map[int]int{}
	compMax := 0
	for _, d := range comps {
		c := depth[d.Compensates]
		at[d.Step] = pos{pad + c*(bw+colGap), band + compRows[c]*(bh+rowGap)}
		compRows[c]++
		compMax = max(compMax, compRows[c])
	}
	width := pad*2 + (maxCol+1)*bw + maxCol*colGap
	height := band - 20 + pad
	if len(comps) > 0 {
		height = band + compMax*(bh+rowGap) + pad
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="graph" viewBox="0 0 %d %d" width="%d" height="%d" role="group" aria-label="Steps and their links">`, width, height, width, height)
	sb.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>`)
	for _, d := range fwd {
		to := at[d.Step]
		for _, a := range d.After {
			from, ok := at[a]
			if !ok {
				continue
			}
			fmt.Fprintf(&sb, `<line class="edge" x1="%d" y1="%d" x2="%d" y2="%d" marker-end="url(#arrow)"><title>%s runs after %s</title></line>`,
				from.x+bw, from.y+bh/2, to.x, to.y+bh/2, esc(d.Step), esc(a))
		}
	}
	for _, d := range comps {
		from, to := at[d.Compensates], at[d.Step]
		fmt.Fprintf(&sb, `<line class="edge comp" x1="%d" y1="%d" x2="%d" y2="%d" marker-end="url(#arrow)"><title>%s undoes %s</title></line>`,
			from.x+bw/2, from.y+bh, to.x+bw/2, to.y, esc(d.Step), esc(d.Compensates))
	}
	for _, d := range ds {
		p := at[d.Step]
		name := d.Step
		if len(name) > 20 {
			name = name[:19] + "…"
		}
		label := fmt.Sprintf("Step %s on %s: %s, %d attempts", d.Step, d.Target, d.Status, len(d.Attempts))
		fmt.Fprintf(&sb, `<a href="#d-%s" aria-label="%s"><rect class="node st-%s" x="%d" y="%d" width="%d" height="%d" rx="6"/>`,
			esc(d.ID), esc(label), esc(d.Status), p.x, p.y, bw, bh)
		fmt.Fprintf(&sb, `<text class="node-name" x="%d" y="%d">%s</text><text class="node-status" x="%d" y="%d">%s · %d</text></a>`,
			p.x+8, p.y+18, esc(name), p.x+8, p.y+35, esc(d.Status), len(d.Attempts))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// attemptTimeline draws every attempt on one time axis, a row per
// delivery, coloured by outcome.
func attemptTimeline(ds []tapi.Delivery) template.HTML {
	var first, last time.Time
	n := 0
	for _, d := range ds {
		for _, a := range d.Attempts {
			end := a.StartedAt.Add(time.Duration(a.DurationMS) * time.Millisecond)
			if first.IsZero() || a.StartedAt.Before(first) {
				first = a.StartedAt
			}
			if end.After(last) {
				last = end
			}
			n++
		}
	}
	if n == 0 {
		return template.HTML(`<p class="muted">No attempts yet.</p>`)
	}
	const label, w, rowH, top = 130, 560, 24, 8
	span := max(last.Sub(first), time.Millisecond)
	rows := 0
	var sb strings.Builder
	for _, d := range ds {
		if len(d.Attempts) == 0 {
			continue
		}
		y := top + rows*rowH
		fmt.Fprintf(&sb, `<text class="row-label" x="0" y="%d">%s</text>`, y+15, esc(trim(d.Step, 18)))
		fmt.Fprintf(&sb, `<line class="lane" x1="%d" y1="%d" x2="%d" y2="%d"/>`, label, y+11, label+w, y+11)
		for _, a := range d.Attempts {
			x := label + int(float64(a.StartedAt.Sub(first))/float64(span)*w)
			aw := max(4, int(float64(time.Duration(a.DurationMS)*time.Millisecond)/float64(span)*w))
			x = min(x, label+w-aw)
			result := a.Outcome
			if a.HTTPStatus != 0 {
				result = fmt.Sprintf("HTTP %d, %s", a.HTTPStatus, a.Outcome)
			}
			fmt.Fprintf(&sb, `<rect class="attempt out-%s" x="%d" y="%d" width="%d" height="14" rx="2" tabindex="0" aria-label="%s attempt %d: %s"><title>%s attempt %d at %s: %s, %d ms %s</title></rect>`,
				esc(a.Outcome), x, y+4, aw, esc(d.Step), a.N, esc(result), esc(d.Step), a.N, stamp(a.StartedAt), esc(result), a.DurationMS, esc(a.Error))
		}
		rows++
	}
	h := top + rows*rowH + 18
	var out strings.Builder
	fmt.Fprintf(&out, `<svg class="timeline" viewBox="0 0 %d %d" width="%d" height="%d" role="group" aria-label="Attempts on a time axis, %s to %s">`,
		label+w+10, h, label+w+10, h, stamp(first), stamp(last))
	out.WriteString(sb.String())
	fmt.Fprintf(&out, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, label, h-16, label+w, h-16)
	fmt.Fprintf(&out, `<text class="tick" x="%d" y="%d">%s</text><text class="tick end" x="%d" y="%d">+%s</text></svg>`,
		label, h-3, first.UTC().Format("15:04:05.000"), label+w, h-3, esc(span.Round(time.Millisecond).String()))
	return template.HTML(out.String())
}

func trim(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
