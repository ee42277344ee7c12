package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version, when set at build time with -ldflags "-X main.version=v1.2.3",
// overrides the module version Go embeds. A release build sets it; go
// install and go build get theirs from the module and VCS stamps.
var version = ""

// buildInfo is what `tandem version` prints: the module version and the
// VCS stamps Go embeds (go build -buildvcs, the default in a checkout).
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
}

// readBuildInfo reads the binary's build information.
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(bi, version)
}

// buildInfoFrom reads bi (nil when the binary has none); override, when
// not empty, is the version stamped with -ldflags.
func buildInfoFrom(bi *debug.BuildInfo, override string) buildInfo {
	b := buildInfo{Version: "(devel)", GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		if v := bi.Main.Version; v != "" {
			b.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		b.Version = override
	}
	return b
}

// String is the one-line form: "tandem v1.2.3 (3f2c1ab, 2026-12-01T20:00:00Z, modified, go1.26.8)".
func (b buildInfo) String() string {
	var extra []string
	if b.Revision != "" {
		extra = append(extra, shortRevision(b.Revision))
	}
	if b.Time != "" {
		extra = append(extra, b.Time)
	}
	if b.Modified {
		extra = append(extra, "modified")
	}
	extra = append(extra, b.GoVersion)
	return fmt.Sprintf("tandem %s (%s)", b.Version, strings.Join(extra, ", "))
}

func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// shortVersion is the version shown in the OpenAPI document and the logs.
func shortVersion() string { return readBuildInfo().Version }

func (m *Main) printVersion(_ context.Context, args []string) error {
	fs := m.newFlags("version", "version [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	b := readBuildInfo()
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	fmt.Fprintln(m.Stdout, b.String())
	return nil
}
