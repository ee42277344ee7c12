package config

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Load reads, interpolates, defaults and validates the config file at path.
// A problem in the file comes back as Errors; a file that cannot be read
// as a wrapped *os.PathError.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a config from data; file names it in errors and is the
// base for relative ${file:} paths ("" means the working directory).
// Every problem comes back at once, as Errors in file order. Parse has no
// side effects except reading the files that ${file:} names.
func Parse(data []byte, file string) (*Config, error) {
	return parse(data, file, os.LookupEnv)
}

// parse is Parse with the environment injected, for tests.
func parse(data []byte, file string, lookupEnv func(string) (string, bool)) (cfg *Config, err error) {
	c := newCollector(file)
	defer func() {
		// The YAML library is third-party; a panic on hostile input must
		// not take the process down.
		if r := recover(); r != nil {
			cfg = nil
			err = Errors{{File: file, Line: 1, Msg: fmt.Sprintf("cannot parse YAML: %v", r)}}
		}
	}()

	body, ok := parseYAML(data, c)
	if !ok {
		return nil, c.result()
	}
	cfg = &Config{}
	if body != nil {
		if !decode(body, cfg, c) {
			return nil, c.result()
		}
	}
	cfg.File = file

	dir := "."
	if file != "" {
		dir = filepath.Dir(file)
	}
	ip := &interpolator{c: c, dir: dir, lookup: lookupEnv}
	walkStrings(reflect.ValueOf(cfg).Elem(), ip.resolve)
	cfg.secrets = c.interpolated
	resolveTrustPaths(cfg, dir)

	setDefaults(cfg)
	validate(cfg, c)
	if err := c.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseYAML parses data into the body of its only document (nil when the
// file is empty or only comments).
func parseYAML(data []byte, c *collector) (ast.Node, bool) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		c.fromYAML(err)
		return nil, false
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			c.addAt(nodeStart(d.Body), "", "only one YAML document is allowed (found a second after \"---\")")
			return nil, false
		}
		body = d.Body
	}
	return body, true
}

// decode checks body against the Config types, then decodes it into cfg.
func decode(body ast.Node, cfg *Config, c *collector) bool {
	aliases, unknown := collectAliases(body)
	expandMerges(body, aliases, c)
	w := &schemaWalker{c: c, aliases: aliases, active: map[ast.Node]bool{}}
	whole := w.walk(body, reflect.TypeFor[Config](), "", 0)
	for _, a := range unknown {
		name := ""
		if a.Value != nil {
			name = a.Value.String()
		}
		c.addAt(nodeStart(a), "", fmt.Sprintf("unknown alias *%s (an alias must follow its &anchor)", name))
	}
	if !whole || w.tooBig {
		return false
	}
	// The walk pruned what it reported, so the rest decodes and is
	// validated in the same pass.
	reported := len(c.errs)
	dec := yaml.NewDecoder(bytes.NewReader(nil), yaml.DisallowUnknownField())
	if err := dec.DecodeFromNodeContext(withAliases(context.Background(), aliases), body, cfg); err != nil {
		if reported == 0 {
			c.fromYAML(err) // else most likely a consequence of what was reported
		}
		return false
	}
	return true
}
