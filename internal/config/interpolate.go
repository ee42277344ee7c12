package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Interpolation runs on the decoded Config, never on YAML text: a resolved
// value is only ever a Go string, so a secret cannot add keys or change
// the file's structure. Each string is resolved once (shared maps and
// slices are visited once), so a secret that itself contains "${" is
// never expanded again.

// maxSecretFile bounds what ${file:} reads.
const maxSecretFile = 1 << 20

// stringWalker calls fn on every config string reachable from a value,
// with its key path, and stores what fn returns when it changed.
type stringWalker struct {
	fn      func(path, s string) (string, bool)
	visited map[visitKey]bool
}

type visitKey struct {
	ptr uintptr
	n   int
	typ reflect.Type
}

func walkStrings(v reflect.Value, fn func(path, s string) (string, bool)) {
	w := &stringWalker{fn: fn, visited: map[visitKey]bool{}}
	w.walk(v, "")
}

// once reports whether v (a pointer, map or slice) is seen the first time.
func (w *stringWalker) once(v reflect.Value) bool {
	k := visitKey{ptr: v.Pointer(), typ: v.Type()}
	if v.Kind() == reflect.Slice {
		k.n = v.Len()
	}
	if w.visited[k] {
		return false
	}
	w.visited[k] = true
	return true
}

// walk visits every string reachable from v. Fields without a yaml name
// (Respond's, File, Name) are not config text and are left alone.
func (w *stringWalker) walk(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !w.once(v) {
			return
		}
		w.walk(v.Elem(), path)
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		if e.Kind() == reflect.String {
			if s, changed := w.fn(path, e.String()); changed && v.CanSet() {
				v.Set(reflect.ValueOf(s).Convert(e.Type()))
			}
			return
		}
		w.walk(e, path)
	case reflect.String:
		if s, changed := w.fn(path, v.String()); changed && v.CanSet() {
			v.SetString(s)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			w.walk(v.Field(i), joinKey(path, name))
		}
	case reflect.Slice:
		if v.IsNil() || !w.once(v) {
			return
		}
		for i := range v.Len() {
			w.walk(v.Index(i), joinIndex(path, i))
		}
	case reflect.Map:
		if v.IsNil() || !w.once(v) {
			return
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			// Map values are not addressable: work on a copy, put it back.
			cp := reflect.New(v.Type().Elem()).Elem()
			cp.Set(v.MapIndex(k))
			w.walk(cp, joinKey(path, fmt.Sprint(k)))
			v.SetMapIndex(k, cp)
		}
	}
}

// interpolator resolves ${env:NAME} and ${file:PATH} in string values.
type interpolator struct {
	c      *collector
	dir    string // base for relative ${file:} paths
	lookup func(string) (string, bool)
}

// resolve expands references in s; changed is false when s has none.
func (ip *interpolator) resolve(path, s string) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, false
	}
	out, secret, err := expand(s, ip.dir, ip.lookup)
	if err != nil {
		ip.c.errf(path, "%v", err)
		ip.c.failed[path] = true
		return s, false
	}
	if secret {
		ip.c.interpolated[path] = true
		ip.c.raw[path] = s
	}
	return out, true
}

// expand resolves ${env:NAME} and ${file:PATH} in s; "$${" stands for a
// literal "${". secret reports whether any reference was resolved.
func expand(s, dir string, lookup func(string) (string, bool)) (out string, secret bool, err error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), secret, nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", false, fmt.Errorf(`unterminated "${": write ${env:NAME} or ${file:PATH}, or $${ for a literal "${"`)
		}
		ref := s[i+2 : i+end]
		v, err := lookupRef(ref, dir, lookup)
		if err != nil {
			return "", false, err
		}
		b.WriteString(v)
		secret = true
		s = s[i+end+1:]
	}
}

func lookupRef(ref, dir string, lookup func(string) (string, bool)) (string, error) {
	kind, arg, ok := strings.Cut(ref, ":")
	switch {
	case ok && kind == "env":
		if !validEnvName(arg) {
			return "", fmt.Errorf("${env:%s}: invalid environment variable name", arg)
		}
		v, found := lookup(arg)
		if !found {
			return "", fmt.Errorf("${env:%s}: environment variable %s is not set", arg, arg)
		}
		return v, nil
	case ok && kind == "file":
		if strings.TrimSpace(arg) == "" {
			return "", fmt.Errorf("${file:}: empty path")
		}
		p := arg
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		v, err := readSecret(p)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: %w", arg, err)
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown reference ${%s}: write ${env:NAME} or ${file:PATH}, or $${ for a literal \"${\"", ref)
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// readSecret reads a secret file, dropping one trailing newline.
func readSecret(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop the path: the message already names it
		}
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("file is larger than %d bytes", maxSecretFile)
	}
	s := string(data)
	if strings.HasSuffix(s, "\r\n") {
		s = s[:len(s)-2]
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	return s, nil
}
